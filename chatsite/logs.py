"""Log lines an operator can search: `LOG_FORMAT=json` (the default when debug is off) writes one JSON
object per line with python-json-logger; `text` one readable line. Both carry the time, level and logger,
and, where known, the request, user, conversation and run ids (`conversations.telemetry.log_context`)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from conversations.telemetry import LOG_CONTEXT

PROBE_REQUEST = re.compile(r"\b(?:GET|HEAD) /(?:healthz|readyz|metrics) ")
"""A probe in an access log line: uvicorn's `"GET /readyz HTTP/1.1" 200`, runserver's `HTTP GET /healthz 200`."""
RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class ContextFilter(logging.Filter):
    """Put the ids of what the task is doing on the record, unless the line gives its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in LOG_CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class ProbeFilter(logging.Filter):
    """Leaves health probes and metric scrapes out of a server's access log (a line every few seconds)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return PROBE_REQUEST.search(record.getMessage()) is None


class JsonFormatter(_JsonFormatter):
    """`{"time", "level", "logger", "message", ...ids and fields of the line, "exc_info"}` per line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("json_ensure_ascii", True)
        kwargs.setdefault("json_default", str)
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)
        log_data["process"] = record.process


class TextFormatter(logging.Formatter):
    """`2026-12-02 03:46:03,123 INFO agentchat.runs run finished run_id=… status=completed …`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in RECORD_FIELDS and v is not None}
        if not fields:
            return line
        head, _, tail = line.partition("\n")
        extra = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{head} {extra}" + (f"\n{tail}" if tail else "")
