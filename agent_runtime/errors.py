"""Model and tool failures, described for people: an error code and a readable message."""

from __future__ import annotations

import httpx
import httpx2  # the openai client's HTTP library from version 3 on
import openai
from pydantic import ValidationError

from agent_runtime import events

MODEL_RATE_LIMITED = "The model service is rate limiting requests; try again shortly."
MODEL_UNAVAILABLE = "The model service could not be reached or dropped the connection."
MODEL_TIMEOUT = "The model service took too long to answer."
MODEL_FAILED = "The model failed to answer."


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
    """A one-line reason a tool call failed, fit for the model and the page."""
    if isinstance(error, ValidationError):
        parts = []
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "arguments"
            parts.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
        return "invalid arguments: " + "; ".join(parts)
    return _short(str(error)) or type(error).__name__


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
