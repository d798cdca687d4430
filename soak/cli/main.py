"""The `soak` command: its parser (one module per command) and the exit codes.

Every error is one line and an exit code (soak.core.errors.EXIT_CODES), no traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import NoReturn

from soak import __version__
from soak.cli import check, demo_model, history, image, k8s, report, run, tune
from soak.core import errors, interrupts
from soak.core.errors import EXIT_CODES, EXIT_OK, SoakError, UsageError

COMMANDS = (run, tune, report, check, history, demo_model, image, k8s)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2)."""

    def error(self, message: str) -> NoReturn:
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
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _raise_interrupt(signum: int, frame: object) -> None:
    raise interrupts.Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    # `soak run` installs its own handlers (soak.core.interrupts); the other commands just stop.
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
