"""The `soak` command line (SPEC §2): run, report, check, demo-model, image.

Exit codes: 0 done, 1 a gate failed, 2 bad usage/config/input, 3 the
environment failed, 130 interrupted by SIGINT, 143 by SIGTERM. Every error is
one line, no traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from soak import errors, interrupts
from soak.errors import EXIT_ENVIRONMENT, EXIT_OK, SoakError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2)."""

    def error(self, message: str):
        command = self.prog.removeprefix("soak").strip()  # main() prints "soak: " already
        raise UsageError(f"{command}: {message}" if command else message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="soak", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="soak TF Serving through model swaps",
        description="Soak TF Serving through model swaps, one variant after the other. "
        "Every option is also a key of the --config TOML file: the flag's name with _ "
        "for -, unless its help names another key.",
    )
    _add_run_arguments(run)
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="re-analyse a run dir and rewrite its report")
    report.add_argument("run_dir", type=Path)
    report.set_defaults(func=cmd_report)

    check = sub.add_parser("check", help="gate a run against limits (exit 1 if crossed)")
    check.add_argument("run_dir", type=Path)
    from soak.gate import add_check_arguments

    add_check_arguments(check)
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser("demo-model", help="write a recommender-like demo SavedModel")
    demo.add_argument("out_dir", type=Path)
    demo.add_argument("--versions", type=int, default=3)
    demo.add_argument("--size-mb", type=float, default=128.0)
    demo.add_argument("--no-warmup", action="store_true", help="no warmup requests file")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo_model)

    image = sub.add_parser("image", help="build (or reuse) soak's Docker images")
    image_sub = image.add_subparsers(dest="image_command", required=True, parser_class=_Parser)
    standin = image_sub.add_parser("standin", help="the stand-in TF Serving image")
    standin.set_defaults(func=cmd_image_standin)
    alloc = image_sub.add_parser("allocators", help="add allocators to a TF Serving image")
    alloc.add_argument("--base", required=True, help="a local TF Serving image")
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
    if not config.quiet:
        from soak.report.terminal import summary_table

        print(summary_table(outcome.result))
        print(f"run dir: {config.out}")
    if outcome.signal is not None:
        name = interrupts.signal_name(outcome.signal)
        print(f"soak: interrupted by {name}; partial results in {config.out}", file=sys.stderr)
        return 128 + outcome.signal
    return EXIT_ENVIRONMENT if outcome.failed_variants else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from soak.report.outputs import write_outputs
    from soak.report.terminal import summary_table
    from soak.store.run_dir import RunDir

    result = write_outputs(args.run_dir)
    print(summary_table(result))
    print(f"report: {RunDir(args.run_dir).report_html}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from soak.gate import run_check

    return run_check(args)


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
