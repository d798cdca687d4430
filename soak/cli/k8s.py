"""`soak k8s job|cronjob`: print the Kubernetes manifests of a soak, or of each model of a
fleet file, for `kubectl apply -f -` (soak.k8s builds them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from soak.core.errors import EXIT_CODES, EXIT_OK, UsageError

KINDS = {"job": "Job", "cronjob": "CronJob"}
DEFAULT_NAME = {"Job": "soak", "CronJob": "soak-nightly"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    k8s = sub.add_parser(
        "k8s",
        help="print Kubernetes manifests that run soaks (a Job or a CronJob each)",
        description="Print a soak's ConfigMap (its soak.toml) and its Job or CronJob, for "
        "`kubectl apply -f -`; with --fleet, those of every model of a fleet file, as one "
        "YAML stream. The pod runs the Job image (`soak image job`): soak run, then soak "
        "check on the verdicts and against the history; its exit code is the Job's.",
        epilog=EXIT_CODES,
    )
    kinds = k8s.add_subparsers(dest="k8s_command", required=True, parser_class=type(k8s))
    for command, kind in KINDS.items():
        p = kinds.add_parser(
            command,
            help=f"a {kind} per soak",
            description=f"Print a {kind} per soak, with the ConfigMap of its soak.toml.",
            epilog=EXIT_CODES,
        )
        _add_arguments(p, kind)
        p.set_defaults(func=cmd_k8s, kind=kind)


def _add_arguments(p: argparse.ArgumentParser, kind: str) -> None:
    from soak.k8s.options import job_options

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, metavar="FILE", help="the soak's soak.toml")
    source.add_argument(
        "--fleet",
        type=Path,
        metavar="FILE",
        help="a fleet file: a [[models]] table per soak (name, and config or settings: a "
        "soak.toml, soak run's settings over it) and [defaults]; both take these options "
        "too, by their names with _ for -",
    )
    p.add_argument(
        "--name",
        help=f"the {kind}'s name, with --config (default: {DEFAULT_NAME[kind]})",
    )
    for o in job_options():
        if o.name == "schedule" and kind != "CronJob":
            continue
        p.add_argument(o.flag, dest=o.name, metavar=o.metavar, help=o.help_text())


def cmd_k8s(args: argparse.Namespace) -> int:
    from soak.k8s.fleet import read_fleet
    from soak.k8s.manifests import documents
    from soak.k8s.options import job_options
    from soak.k8s.plan import Layer, SoakSource, decide
    from soak.k8s.yaml_stream import yaml_stream

    flags = Layer("--{}", {o.name: getattr(args, o.name, None) for o in job_options()})
    if args.fleet is not None:
        if args.name is not None:
            raise UsageError("--name names the soak of --config; a fleet file names its own")
        sources = read_fleet(args.fleet, flags)
    else:
        sources = [SoakSource(args.name or DEFAULT_NAME[args.kind], args.config, {}, (flags,))]
    jobs, problems = [], []
    for source in sources:
        try:
            jobs.append(decide(source, args.kind))
        except UsageError as exc:
            problems.append(f"{source.where}: {exc}" if source.where else str(exc))
    if problems:
        where = f"fleet file {args.fleet}: " if args.fleet is not None else ""
        raise UsageError(where + "; ".join(problems))
    print(yaml_stream(d for job in jobs for d in documents(job, args.kind)), end="")
    return EXIT_OK
