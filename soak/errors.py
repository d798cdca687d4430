"""Errors that map to soak's exit codes (README: exit codes)."""

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)


class SoakError(Exception):
    """A failure with a one-line message for the user and an exit code."""

    exit_code = EXIT_USAGE


class UsageError(SoakError):
    """Bad usage, config or input: exit 2."""

    exit_code = EXIT_USAGE


class EnvironmentFailure(SoakError):
    """The environment failed (Docker unreachable, server would not start): exit 3."""

    exit_code = EXIT_ENVIRONMENT
