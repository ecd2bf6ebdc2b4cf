"""Model and tool failures, described for people: an error code and a readable message.

A tool's failure reaches the model, the tabs and storage. What the product or the tool meant to
say (invalid arguments, an unknown tool, a refused approval, a tool's own `ToolException` or
`ToolInputError`) goes as it is; anything else is a fault whose text may hold what nobody should
see (an upstream URL with its key, a path): those get a short generic message with an error id,
and the detail, its URLs' query strings and secrets redacted, goes to the server log.
"""

from __future__ import annotations

import re
import traceback
from typing import Any
from uuid import uuid4

import httpx
import httpx2  # the openai client's HTTP library from version 3 on
import openai
from langchain_core.tools import ToolException
from pydantic import ValidationError

from agent_runtime import events
from agent_runtime.tools import ToolInputError

MODEL_RATE_LIMITED = "The model service is rate limiting requests; try again shortly."
MODEL_UNAVAILABLE = "The model service could not be reached or dropped the connection."
MODEL_TIMEOUT = "The model service took too long to answer."
MODEL_FAILED = "The model failed to answer."
TOOL_FAILED = "the tool failed (error id {error_id}); the details are in the server log"
TOOL_TIMED_OUT = "the tool did not answer within {seconds:g} seconds and was given up on"


class ToolCallRefused(ValueError):
    """A tool call the product refuses or gives up on, with a reason meant for the model."""


TOLD_ERRORS = (ValidationError, ToolException, ToolInputError, ToolCallRefused)
"""Failures whose text is written for the model: passed on as they are."""


def describe_model_error(error: BaseException) -> tuple[str, str]:
    """Map an exception raised while streaming from the model to `(code, message)`."""
    if isinstance(error, openai.RateLimitError):
        retry_after = error.response.headers.get("retry-after")
        hint = f" (retry after {retry_after} s)" if retry_after else ""
        return events.ERROR_MODEL_RATE_LIMITED, MODEL_RATE_LIMITED + hint
    if isinstance(error, openai.APITimeoutError | httpx.TimeoutException | httpx2.TimeoutException | TimeoutError):
        return events.ERROR_MODEL_TIMEOUT, MODEL_TIMEOUT
    if isinstance(error, openai.APIConnectionError | httpx.TransportError | httpx2.TransportError):
        return events.ERROR_MODEL_UNAVAILABLE, MODEL_UNAVAILABLE
    if isinstance(error, openai.APIStatusError):
        return events.ERROR_MODEL_FAILED, f"{MODEL_FAILED} HTTP {error.status_code}: {_short(error.message)}"
    detail = _short(str(error)) or type(error).__name__
    return events.ERROR_MODEL_FAILED, f"{MODEL_FAILED} {detail}"


def describe_tool_error(error: Exception) -> str:
    """A one-line reason a tool call failed, fit for the model and the page (see `tool_failure`)."""
    if isinstance(error, ValidationError):
        parts = []
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "arguments"
            parts.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
        return "invalid arguments: " + "; ".join(parts)
    return _short(str(error)) or type(error).__name__


def tool_failure(error: Exception, *, tool: str, run_id: str, log: Any) -> str:
    """What the model and the page are told of a tool's failure; a fault's detail goes to `log` only."""
    if isinstance(error, TOLD_ERRORS):
        return describe_tool_error(error)
    error_id = uuid4().hex[:12]
    detail = redact("".join(traceback.format_exception(error)))
    log.error("tool %s of run %s failed (error id %s):\n%s", tool, run_id, error_id, detail)
    return TOOL_FAILED.format(error_id=error_id)


_URL_QUERY = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s'\"<>?#]*)\?[^\s'\"<>#]*")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@'\"<>]+@")
_SECRET_PAIR = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|token|secret|password|passwd|authorization)[\"']?\s*[=:]\s*[\"']?)"
    r"(?:bearer\s+)?[^\s&'\",;]+"
)


def redact(text: str) -> str:
    """`text` with URLs' query strings and user info, and `key=value` secrets, replaced by `[redacted]`."""
    text = _URL_QUERY.sub(r"\1?[redacted]", text)
    text = _URL_USERINFO.sub(r"\1[redacted]@", text)
    return _SECRET_PAIR.sub(r"\1[redacted]", text)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
