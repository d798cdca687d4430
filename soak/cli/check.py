"""`soak check`: the gate for schedulers and CI (soak.gate.check has the rules)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser(
        "check",
        help="gate a run against limits (exit 1 if any is crossed)",
        description="The gate for schedulers and CI: one line per crossed limit, exit 1.",
    )
    check.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    from soak.gate.check import add_check_arguments

    add_check_arguments(check)
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from soak.gate.check import run_check

    return run_check(args)
