"""Log output of a node process: human text lines (default) or one JSON object per line.

`configure(fmt)` sets up the root logger once, for `perpchain start` (cli/run.py); the format
comes from `--log-format` or the `log_format` key of config.toml. A JSON line holds `time`
(UTC, ISO 8601), `level`, `logger`, `message`, any `extra={...}` fields given to the log call,
and `exc_info` (the traceback text) when there is one. The JSON encoding is python-json-logger's.
"""

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from node.config import LOG_FORMATS

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_formatter() -> logging.Formatter:
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"})


def configure(fmt: str = "text", level: int = logging.INFO, stream=None) -> None:
    """Send every log record to `stream` (stderr) as `fmt` ("text" or "json")."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)   # Python warnings become records in the same format
