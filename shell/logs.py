"""How every subcommand logs: a level and a format, from flags or the environment.

``--log-level`` (DEBUG, INFO, WARNING, ERROR, CRITICAL; ``TIDEGATE_LOG_LEVEL``)
and ``--log-format`` (``text`` or ``json``; ``TIDEGATE_LOG_FORMAT``) are
accepted before the subcommand and after it. An unknown value is a one-line
usage error (exit 2), never a traceback.

``json`` writes one object per line for log collectors, the line that ends
a command included (``fatal``): ``time`` (UTC,
RFC 3339 with milliseconds), ``level``, ``logger``, ``message``, ``route``
and ``job`` when known (the record's own, ``extra={"route": ...}``, else the
logging task's, ``tidegate.log_context``), and ``error`` with the traceback
when there is one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from tidegate.log_context import JOB, ROUTE

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_level(value: str) -> str:
    """An argparse type: a level name, any case."""
    upper = value.upper()
    if upper not in LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LEVELS)}")
    return upper


def log_format(value: str) -> str:
    lower = value.lower()
    if lower not in FORMATS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(FORMATS)}")
    return lower


def add_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The two options; on a subcommand (``defaults=False``) they only
    override what was given before it when given again."""
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=os.environ.get("TIDEGATE_LOG_LEVEL", "INFO") if defaults else argparse.SUPPRESS,
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (or $TIDEGATE_LOG_LEVEL; default INFO)",
    )
    parser.add_argument(
        "--log-format",
        type=log_format,
        default=os.environ.get("TIDEGATE_LOG_FORMAT", "text") if defaults else argparse.SUPPRESS,
        help="text or json, one object per line (or $TIDEGATE_LOG_FORMAT; default text)",
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field, current in (("route", ROUTE), ("job", JOB)):
            value = getattr(record, field, None) or current.get()
            if value is not None:
                line[field] = str(value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


_format = "text"
"""The format ``configure`` set: what ``fatal`` writes."""


def configure(level: str, fmt: str) -> None:
    """Set up the root logger (replacing any handler set before)."""
    global _format
    _format = fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def fatal(message: str, exc: BaseException | None = None) -> None:
    """The one line that says why a command ends: ``tidegate: ...`` on stderr,
    or with ``--log-format json`` a JSON object like every other line (a log
    pipeline reads the line that explains a crash too), with the trace as
    ``error`` when there is one."""
    if _format != "json":
        print(f"tidegate: {message}", file=sys.stderr)
        if exc is not None:
            logging.getLogger("tidegate").debug("trace", exc_info=exc)
        return
    record = logging.LogRecord("tidegate", logging.CRITICAL, "", 0, message, None, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    print(JsonFormatter().format(record), file=sys.stderr)
