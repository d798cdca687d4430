"""`soak history`: the runs recorded so far, with the trend per variant."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from soak.core.errors import EXIT_OK, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    history = sub.add_parser(
        "history",
        help="the runs recorded so far, with the trend per variant",
        description="List the runs recorded in a history (an SQLite file, or a PostgreSQL "
        "database many soaks share), grouped by variant, config hash and model, with the "
        "trend of their figures; --html writes a page with plots.",
    )
    history.add_argument(
        "db",
        nargs="?",
        metavar="DB",
        help="the history: an SQLite file or a postgresql://USER:PASSWORD@HOST/DB URL "
        "(default: $SOAK_HISTORY, else soak-runs/history.sqlite)",
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
        "--import",
        dest="imports",
        action="append",
        metavar="SQLITE_FILE",
        help="first copy the runs of another history into this one, as recorded; runs it "
        "has already are skipped, so importing twice adds nothing (repeatable) (default: none)",
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
    from soak.history.location import parse, resolve
    from soak.report.history_page import write_history_page
    from soak.report.terminal import history_table

    where = resolve(args.db, os.environ, DEFAULT_RUNS_DIR / HISTORY_FILE)
    if args.last < 1:
        raise UsageError(f"--last must be >= 1, not {args.last}")
    for source in args.imports or []:
        done = history.import_history(source, where)
        print(
            f"imported {parse(source)} into {where}: {done.added} runs added, "
            f"{done.skipped} already there (skipped)"
        )
    for run_dir in args.add or []:
        from soak.analysis.load import load_result

        history.record(where, load_result(run_dir), run_dir)
        print(f"recorded {run_dir} in {where}")
    runs = history.runs(where, model=args.model, variant=args.variant, config_hash=args.config_hash)
    print(history_table(runs, where, last=args.last))
    if args.html is not None:
        write_history_page(args.html, runs, where, last=args.last)
        print(f"history page: {args.html}")
    return EXIT_OK
