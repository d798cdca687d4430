"""Errors that map to soak's exit codes (README: exit codes)."""

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)

EXIT_CODES = (
    "exit codes: 0 done and within limits; 1 a gate failed (soak check: a limit crossed); "
    "2 bad usage, config or input; 3 the environment failed (server would not start, "
    "Docker unreachable, a variant failed); 130 interrupted (Ctrl-C), 143 stopped "
    "(SIGTERM): partial results are kept."
)


class SoakError(Exception):
    """A failure with a one-line message for the user and an exit code."""

    exit_code = EXIT_USAGE


class UsageError(SoakError):
    """Bad usage, config or input: exit 2."""

    exit_code = EXIT_USAGE


class EnvironmentFailure(SoakError):
    """The environment failed (Docker unreachable, server would not start): exit 3."""

    exit_code = EXIT_ENVIRONMENT
