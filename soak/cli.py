"""soak: a memory-leak and hot-reload soak monitor for TensorFlow Serving.

Exit codes: 0 done and within limits, 1 a gate failed (once, one line per
crossed limit), 2 bad usage/config/input, 3 the environment failed, 130
interrupted (SIGINT), 143 stopped (SIGTERM). Every error is one line, no traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from soak import __version__, errors, interrupts
from soak.errors import (
    EXIT_ENVIRONMENT,
    EXIT_OK,
    SoakError,
    UsageError,
)

EXIT_CODES = (
    "exit codes: 0 done and within limits; 1 a gate failed (soak check: a limit crossed); "
    "2 bad usage, config or input; 3 the environment failed (server would not start, "
    "Docker unreachable, a variant failed); 130 interrupted (Ctrl-C), 143 stopped "
    "(SIGTERM): partial results are kept."
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2)."""

    def error(self, message: str):
        command = self.prog.removeprefix("soak").strip()  # main() prints "soak: " already
        raise UsageError(f"{command}: {message}" if command else message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="soak",
        description="Soak TensorFlow Serving through hot model swaps, per allocator, and tell "
        "which memory is never given back. 'soak COMMAND --help' for each command.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"soak {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="soak TF Serving through model swaps",
        description="Soak TF Serving through model swaps, one variant after the other. "
        "Every option is also a key of the --config TOML file: the flag's name with _ "
        "for -, unless its help names another key. The run dir (default soak-runs/TIME) "
        "gets summary.json, report.html and the raw data; the run is recorded in the "
        "history (see soak history).",
        epilog=EXIT_CODES,
    )
    _add_run_arguments(run)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser(
        "report",
        help="re-analyse a run dir and rewrite its report",
        description="Re-analyse a run dir's raw data (also of a run that was interrupted or "
        "killed) and rewrite its summary.json and report.html.",
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.set_defaults(func=cmd_report)

    check = sub.add_parser(
        "check",
        help="gate a run against limits (exit 1 if any is crossed)",
        description="The gate for schedulers and CI: one line per crossed limit, exit 1.",
    )
    check.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    from soak.gate import add_check_arguments

    add_check_arguments(check)
    check.set_defaults(func=cmd_check)

    history = sub.add_parser(
        "history",
        help="the runs recorded so far, with the trend per variant",
        description="List the runs recorded in a history file, grouped by variant, config "
        "hash and model, with the trend of their figures; --html writes a page with plots.",
    )
    history.add_argument(
        "db",
        nargs="?",
        type=Path,
        metavar="DB",
        help="the history file (default: soak-runs/history.sqlite)",
    )
    history.add_argument("--model", metavar="NAME", help="only this model (default: all)")
    history.add_argument("--variant", metavar="NAME", help="only this variant (default: all)")
    history.add_argument(
        "--config-hash",
        metavar="PREFIX",
        help="only runs or variants whose config hash starts with this (default: all)",
    )
    history.add_argument(
        "--last",
        type=int,
        default=30,
        metavar="N",
        help="the last N runs of each group (default: 30)",
    )
    history.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a page with plots (default: none)"
    )
    history.add_argument(
        "--add",
        type=Path,
        action="append",
        metavar="RUN_DIR",
        help="record a run dir first (a run that was killed, after soak report; repeatable) "
        "(default: none)",
    )
    history.set_defaults(func=cmd_history)

    demo = sub.add_parser(
        "demo-model",
        help="write a recommender-like demo SavedModel",
        description="Write a recommender-like SavedModel base path with numeric versions "
        "(what the default soak run cycles through).",
    )
    demo.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    demo.add_argument(
        "--versions", type=int, default=3, metavar="N", help="versions to write (default: 3)"
    )
    demo.add_argument(
        "--size-mb",
        type=float,
        default=128.0,
        metavar="MB",
        help="size of each version in MiB (default: 128)",
    )
    demo.add_argument(
        "--no-warmup", action="store_true", help="no warmup requests file (default: off)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed of the weights (default: 0)"
    )
    demo.set_defaults(func=cmd_demo_model)

    image = sub.add_parser("image", help="build (or reuse) soak's Docker images")
    image_sub = image.add_subparsers(dest="image_command", required=True, parser_class=_Parser)
    standin = image_sub.add_parser("standin", help="the stand-in TF Serving image")
    standin.set_defaults(func=cmd_image_standin)
    alloc = image_sub.add_parser("allocators", help="add allocators to a TF Serving image")
    alloc.add_argument("--base", required=True, metavar="IMAGE", help="a local TF Serving image")
    alloc.set_defaults(func=cmd_image_allocators)
    return parser


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    from soak.settings import add_arguments

    p.add_argument("--config", type=Path, help="a TOML file of settings (flags override it)")
    add_arguments(p)


_NOT_SETTINGS = {"config", "command", "func"}


def cmd_run(args: argparse.Namespace) -> int:
    from soak.config import load_toml, resolve
    from soak.progress import Progress
    from soak.runner import run_soak

    file_values = load_toml(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    config = resolve(file_values, flags)
    progress = Progress(quiet=config.quiet)
    try:
        outcome = run_soak(config, progress)
    except interrupts.Interrupted as exc:
        if exc.forced and Path(config.out).is_dir():
            why = f"{exc.reason}, forced: no analysis; `soak report {config.out}` makes it"
        else:
            why = exc.reason
        print(f"soak: {why}", file=sys.stderr)
        return exc.exit_code
    finally:
        progress.close()
    if config.quiet:
        print(outcome.run_dir)  # for scripts: RUN=$(soak run --quiet)
    else:
        from soak.report.terminal import summary_table

        print(summary_table(outcome.result))  # its last line: where the run went
        if outcome.history is not None:
            print(f"recorded in {outcome.history} (soak history {outcome.history})")
    if outcome.history_error is not None:
        print(
            f"soak: the run was not recorded in the history: {outcome.history_error} "
            f"(soak history --add {outcome.run_dir} records it)",
            file=sys.stderr,
        )
    if outcome.signal is not None:
        name = interrupts.signal_name(outcome.signal)
        forced = (
            f", forced after the analysis was written (`soak report {config.out}` redoes it)"
            if outcome.forced
            else ""
        )
        print(
            f"soak: interrupted by {name}{forced}; partial results in {config.out}",
            file=sys.stderr,
        )
        return 128 + outcome.signal
    return EXIT_ENVIRONMENT if outcome.failed_variants else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from soak.report.outputs import write_outputs
    from soak.report.terminal import summary_table

    result = write_outputs(args.run_dir)
    print(summary_table(result))  # its last line names the report
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from soak.gate import run_check

    return run_check(args)


def cmd_history(args: argparse.Namespace) -> int:
    from soak import history
    from soak.report.history_page import write_history_page
    from soak.report.terminal import history_table
    from soak.settings import DEFAULT_RUNS_DIR, HISTORY_FILE

    path = args.db or DEFAULT_RUNS_DIR / HISTORY_FILE
    if args.last < 1:
        raise UsageError(f"--last must be >= 1, not {args.last}")
    for run_dir in args.add or []:
        from soak.gate import load_result

        history.record(path, load_result(run_dir), run_dir)
        print(f"recorded {run_dir} in {path}")
    runs = history.runs(path, model=args.model, variant=args.variant, config_hash=args.config_hash)
    print(history_table(runs, path, last=args.last))
    if args.html is not None:
        write_history_page(args.html, runs, path, last=args.last)
        print(f"history page: {args.html}")
    return EXIT_OK


def cmd_demo_model(args: argparse.Namespace) -> int:
    from soak.extras import require_tensorflow

    require_tensorflow("demo-model")
    from soak.demo_model import write_demo_model

    path = write_demo_model(
        args.out_dir,
        versions=args.versions,
        size_mb=args.size_mb,
        warmup=not args.no_warmup,
        seed=args.seed,
    )
    print(path)
    return EXIT_OK


def cmd_image_standin(args: argparse.Namespace) -> int:
    from soak.images import ensure_standin_image
    from soak.targets.docker_engine import connect

    print(ensure_standin_image(connect(), progress=lambda m: print(m, file=sys.stderr)))
    return EXIT_OK


def cmd_image_allocators(args: argparse.Namespace) -> int:
    from soak.images import ensure_allocator_image
    from soak.targets.docker_engine import connect

    print(ensure_allocator_image(connect(), args.base))
    return EXIT_OK


def _raise_interrupt(signum, frame):
    raise interrupts.Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    # `soak run` installs its own handlers (soak.interrupts); the other commands just stop.
    for signum in (signal.SIGINT, signal.SIGTERM):  # even if ignored at start (interrupts.py)
        signal.signal(signum, _raise_interrupt)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return exc.exit_code
    except interrupts.Interrupted as exc:
        print(f"soak: {exc.reason}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
