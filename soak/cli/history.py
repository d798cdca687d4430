"""`soak history`: the runs recorded so far, with the trend per variant."""

from __future__ import annotations

import argparse
from pathlib import Path

from soak.core.errors import EXIT_OK, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
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


def cmd_history(args: argparse.Namespace) -> int:
    from soak.config.settings import DEFAULT_RUNS_DIR, HISTORY_FILE
    from soak.history import store as history
    from soak.report.history_page import write_history_page
    from soak.report.terminal import history_table

    path = args.db or DEFAULT_RUNS_DIR / HISTORY_FILE
    if args.last < 1:
        raise UsageError(f"--last must be >= 1, not {args.last}")
    for run_dir in args.add or []:
        from soak.analysis.load import load_result

        history.record(path, load_result(run_dir), run_dir)
        print(f"recorded {run_dir} in {path}")
    runs = history.runs(path, model=args.model, variant=args.variant, config_hash=args.config_hash)
    print(history_table(runs, path, last=args.last))
    if args.html is not None:
        write_history_page(args.html, runs, path, last=args.last)
        print(f"history page: {args.html}")
    return EXIT_OK
