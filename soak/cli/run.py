"""`soak run`: soak TF Serving through model swaps, then analyse and record the run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from soak.core import interrupts
from soak.core.errors import EXIT_CODES, EXIT_ENVIRONMENT, EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    add_run_arguments(run)
    run.set_defaults(func=cmd_run)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    from soak.config.settings import add_arguments

    p.add_argument("--config", type=Path, help="a TOML file of settings (flags override it)")
    add_arguments(p)


NOT_SETTINGS = {"config", "command", "func"}


def cmd_run(args: argparse.Namespace) -> int:
    from soak.cli.runner import run_soak
    from soak.config.resolve import load_toml, resolve
    from soak.driver.progress import Progress

    file_values = load_toml(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS}
    config = resolve(file_values, flags, os.environ)
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
    for variant in outcome.failed_variants:  # said even with --quiet: exit 3 needs its why
        print(f"soak: variant {variant.name} failed: {variant.reason}", file=sys.stderr)
    return EXIT_ENVIRONMENT if outcome.failed_variants else EXIT_OK
