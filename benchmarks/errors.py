"""One exception type for user mistakes; the CLI turns it into a one-line message and exit code 2."""

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130  # SIGINT or SIGTERM; result.json then has status "interrupted"


class BenchmarkError(Exception):
    """A mistake the user can fix (bad path, config key, CSV row, ...).

    The message is one line that names the file/key/value, says what was expected and how to fix it.
    Library code raises this and never calls sys.exit; only `benchmarks.cli` decides exit codes.
    """


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message folded onto one line (library messages can span lines), cut to `limit`."""
    text = " ".join(str(exc).split())
    return text if limit is None else text[:limit]
