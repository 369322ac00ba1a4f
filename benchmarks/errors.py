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


def printable(text: str, keep_newlines: bool = False) -> str:
    """`text` safe for a terminal or a log: control characters (an ESC starting a terminal sequence, BEL, C1
    codes) and lone surrogates (bytes of a path that are not UTF-8) written as \\xNN; newlines kept if asked."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif code < 32 or 127 <= code < 160:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message folded onto one line (library messages can span lines), cut to `limit`, its
    control characters escaped (a path or value holding a terminal escape sequence is shown, not obeyed)."""
    text = printable(" ".join(str(exc).split()))
    return text if limit is None else text[:limit]
