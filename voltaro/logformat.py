"""Log lines that say only what they say: a record is one line, whatever it quotes.

Voltaro logs what others send it: a charger's bad frame, a request path, a charge point id,
an error a library raised about its input. One of those with a line break in it would forge
whole log lines (``... ERROR voltaro.admin.server: FORGED-LINE``) for whoever reads or
parses the log; terminal escape sequences could rewrite what an operator sees. So the one
formatter every ``voltaro`` command logs through escapes control characters in the
message (``\\n``, ``\\x1b``, ...), and indents every line of a traceback that follows it: no
line but a record's first starts at the left margin.

``VOLTARO_LOG_FORMAT=json`` writes each record as one JSON object per line instead (for a
log shipper): ``time``, ``level``, ``logger``, ``message``, and ``process`` (a worker) and
``exception`` when there is one. JSON escapes every control character itself.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import orjson

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
TRACEBACK_INDENT = "  "


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class OneLineFormatter(logging.Formatter):
    """See the module docstring."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = escape_controls(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei: object) -> str:
        return _indented(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    lines = (escape_controls(line) for line in text.splitlines())
    return "\n".join(TRACEBACK_INDENT + line for line in lines)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._process is not None:
            line["process"] = self._process
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line).decode()


LOG_FORMATS = ("text", "json")


def configure_logging(level: str, process: str | None = None, log_format: str = "text") -> None:
    """Every record to stderr, one line each (text: tracebacks indented below it; json: one
    object per line); ``process`` names the process in every line (``[w1]``: a worker of
    ``voltaro serve --workers N``, whose lines share the parent's stderr)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter(process))
    else:
        line_format = (
            FORMAT if process is None else FORMAT.replace(" %(name)s", f" [{process}] %(name)s")
        )
        handler.setFormatter(OneLineFormatter(line_format))
    logging.basicConfig(level=level, handlers=[handler])
    # No format names a thread, a process or a source line: not looking them up for every
    # record took a line from 15.4 to 12.2 µs (each connection logs two, in a storm 30,000).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    # pgserver narrates every step of starting PostgreSQL at INFO; its warnings still show.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, logging.getLogger().level))
