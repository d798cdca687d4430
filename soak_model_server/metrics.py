"""TF Serving's monitoring metrics and its Prometheus page (util/prometheus_exporter.cc).

TF Serving exports every metric of the process's TensorFlow CollectionRegistry. The stand-in
cannot read TensorFlow's C++ registry from Python, so it keeps the metrics on the paths it
implements itself, with TF Serving's and TensorFlow's names, labels, kinds and buckets:

  /tensorflow/serving/request_count          counter    model_name, status
  /tensorflow/serving/request_latency        histogram  model_name, API, entrypoint (us)
  /tensorflow/serving/runtime_latency        histogram  model_name, API, runtime (us)
  /tensorflow/serving/model_warmup_latency   histogram  model_path, status (us)
  /tensorflow/serving/model_warmup_records_read  counter  model_path, status
  /tensorflow/cc/saved_model/load_attempt_count  counter  model_path, status
  /tensorflow/cc/saved_model/load_latency    counter    model_path (total us)
  /tensorflow/cc/saved_model/load_latency_by_stage  histogram  model_path, stage (us)
  /tensorflow/core/graph_runs                counter
  /tensorflow/core/graph_run_time_usecs      counter
  /tensorflow/core/graph_run_time_usecs_histogram  histogram

Values are held by the Prometheus client library (a private registry); the page is written
the way TF Serving's exporter writes it: names with '/' turned into ':', no HELP lines,
counters without a `_total` suffix, bucket limits printed with six significant digits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic

from prometheus_client import CollectorRegistry, Counter, Histogram

DEFAULT_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath

REGISTRY = CollectorRegistry(auto_describe=False)


def _exponential(scale: float, growth: float, count: int) -> list[float]:
    """monitoring::Buckets::Exponential; the +Inf bucket is added by the histogram."""
    limits = [scale]
    for _ in range(count - 1):
        limits.append(limits[-1] * growth)
    return limits


_LATENCY_BUCKETS = _exponential(10, 1.8, 33)  # "(~20 minutes)", microseconds
_KINDS: dict[str, str] = {}  # prometheus name -> "counter" | "histogram"
_ORDER: list[str] = []


def _prometheus_name(tf_name: str) -> str:
    """GetPrometheusMetricName: every character outside [a-zA-Z0-9_] becomes ':'."""
    return "".join(c if c.isalnum() or c == "_" else ":" for c in tf_name)


def _counter(tf_name: str, doc: str, *labels: str) -> Counter:
    name = _prometheus_name(tf_name)
    _KINDS[name] = "counter"
    _ORDER.append(name)
    return Counter(name, doc, labels, registry=REGISTRY)


def _histogram(tf_name: str, doc: str, buckets: list[float], *labels: str) -> Histogram:
    name = _prometheus_name(tf_name)
    _KINDS[name] = "histogram"
    _ORDER.append(name)
    return Histogram(name, doc, labels, registry=REGISTRY, buckets=buckets)


# tensorflow_serving/servables/tensorflow/util.cc
request_count = _counter(
    "/tensorflow/serving/request_count", "The total number of requests.", "model_name", "status"
)
request_latency = _histogram(
    "/tensorflow/serving/request_latency",
    "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
    _LATENCY_BUCKETS,
    "model_name",
    "API",
    "entrypoint",
)
runtime_latency = _histogram(
    "/tensorflow/serving/runtime_latency",
    "Distribution of wall time (in microseconds) for Tensorflow runtime.",
    _LATENCY_BUCKETS,
    "model_name",
    "API",
    "runtime",
)
# tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc
warmup_latency = _histogram(
    "/tensorflow/serving/model_warmup_latency",
    "Distribution of wall time (in microseconds) for warming up the model.",
    _LATENCY_BUCKETS,
    "model_path",
    "status",
)
warmup_records_read = _counter(
    "/tensorflow/serving/model_warmup_records_read",
    "Total number of warmup records read during model warmup.",
    "model_path",
    "status",
)
# tensorflow/cc/saved_model/loader.cc
load_attempt_count = _counter(
    "/tensorflow/cc/saved_model/load_attempt_count",
    "The number of times a SavedModel was successfully loaded.",
    "model_path",
    "status",
)
load_latency = _counter(
    "/tensorflow/cc/saved_model/load_latency",
    "Latency in microseconds for SavedModels that were successfully loaded.",
    "model_path",
)
load_latency_by_stage = _histogram(
    "/tensorflow/cc/saved_model/load_latency_by_stage",
    "Distribution of wall time spent (in microseconds) in each stage (restore graph from "
    "disk, run init graph op, etc) when loading the model",
    _LATENCY_BUCKETS,
    "model_path",
    "stage",
)
# tensorflow/core/framework/metrics.cc
graph_runs = _counter(
    "/tensorflow/core/graph_runs",
    "The number of graph executions used to collect /tensorflow/core/graph_run_time_usecs",
)
graph_run_time_usecs = _counter(
    "/tensorflow/core/graph_run_time_usecs",
    "The total time spent on executing graphs in microseconds.",
)
graph_run_time_usecs_histogram = _histogram(
    "/tensorflow/core/graph_run_time_usecs_histogram",
    "The wall-clock time spent on executing graphs in microseconds.",
    _exponential(1000, 2, 20),
)

_graph_lock = threading.Lock()


def micros_since(start: float) -> int:
    """Whole microseconds since a time.monotonic() reading."""
    return max(0, int((monotonic() - start) * 1e6))


@contextmanager
def graph_run() -> Iterator[None]:
    """Count one session run (metrics::UpdateGraphExecTime), successful or not."""
    start = monotonic()
    try:
        yield
    finally:
        elapsed = micros_since(start)
        with _graph_lock:
            graph_runs.inc()
            graph_run_time_usecs.inc(elapsed)
        graph_run_time_usecs_histogram.observe(elapsed)


def record_request(model_name: str, api: str, entrypoint: str, code: str, start: float) -> None:
    """RecordRequestLatency (successful requests only) and RecordModelRequestCount."""
    if code == "OK":
        request_latency.labels(model_name, api, entrypoint).observe(micros_since(start))
    request_count.labels(model_name, code).inc()


# --- configuration -------------------------------------------------------------------------


def prometheus_path_from_config(config_file: str) -> str | None:
    """The Prometheus path of a text MonitoringConfig file (--monitoring_config_file), or None
    when it does not enable Prometheus. ValueError (one line) if the file cannot be parsed."""
    from google.protobuf import text_format

    from soak_model_server import protos

    try:
        with open(config_file, encoding="utf-8") as file:
            config = text_format.Parse(file.read(), protos.MonitoringConfig())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        raise ValueError(f"Invalid protobuf file: '{config_file}': {error}") from None
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PATH


# --- the page ------------------------------------------------------------------------------


def _number(value: float) -> str:
    """absl::StrCat of a double: six significant digits, like printf's %g."""
    return format(value, ".6g")


def _labels(pairs: list[tuple[str, str]]) -> str:
    escaped = (
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in pairs
    )
    return ",".join(escaped)


def prometheus_page() -> str:
    """The metrics in Prometheus text format, as TF Serving's PrometheusExporter writes it."""
    families = {family.name: family for family in REGISTRY.collect()}
    lines: list[str] = []
    for name in sorted(_ORDER):  # TF's registry is ordered by metric name
        family = families.get(name)
        kind = _KINDS[name]
        lines.append(f"# TYPE {name} {kind}")
        if family is None:
            continue
        if kind == "counter":
            for sample in family.samples:
                if sample.name == f"{name}_total":
                    lines.append(
                        f"{name}{{{_labels(list(sample.labels.items()))}}} {int(sample.value)}"
                    )
            continue
        sums: dict[tuple, float] = {}
        for sample in family.samples:
            key = tuple((k, v) for k, v in sample.labels.items() if k != "le")
            if sample.name == f"{name}_sum":
                sums[key] = sample.value
        for sample in family.samples:
            key = tuple((k, v) for k, v in sample.labels.items() if k != "le")
            if sample.name == f"{name}_bucket":
                le = sample.labels["le"]
                limit = "+Inf" if le == "+Inf" else _number(float(le))
                prefix = _labels(list(key))
                prefix = f"{prefix}," if prefix else ""
                lines.append(f'{name}_bucket{{{prefix}le="{limit}"}} {int(sample.value)}')
            elif sample.name == f"{name}_count":
                lines.append(f"{name}_sum{{{_labels(list(key))}}} {_number(sums.get(key, 0.0))}")
                lines.append(f"{name}_count{{{_labels(list(key))}}} {int(sample.value)}")
    return "\n".join(lines) + "\n"
