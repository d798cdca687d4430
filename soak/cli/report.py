"""`soak report`: re-analyse a run dir and rewrite its summary.json and report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from soak.core.errors import EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report",
        help="re-analyse a run dir and rewrite its report",
        description="Re-analyse a run dir's raw data (also of a run that was interrupted or "
        "killed) and rewrite its summary.json and report.html.",
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from soak.report.outputs import write_outputs
    from soak.report.terminal import summary_table

    result = write_outputs(args.run_dir)
    print(summary_table(result))  # its last line names the report
    return EXIT_OK
