"""The event protocol: the one home of every event a run emits.

The browser's JavaScript (`static/chat/protocol.js`) mirrors this module, and
`docs/protocol.md` documents it; change all three together.

Every event is a JSON object with `type`, `run_id` and `seq` (1, 2, 3, ... per run,
no gaps). A run that adds 10 and 10 emits, in order::

    {"type": "run_started", "run_id": "r1", "seq": 1, "model": "offline-demo"}
    {"type": "tool_start",  "run_id": "r1", "seq": 2, "call_id": "c1", "name": "add"}
    {"type": "tool_args",   "run_id": "r1", "seq": 3, "call_id": "c1", "delta": "{\\"x\\": 10"}
    {"type": "tool_args",   "run_id": "r1", "seq": 4, "call_id": "c1", "delta": ", \\"y\\": 10}"}
    {"type": "step_end",    "run_id": "r1", "seq": 5}
    {"type": "tool_result", "run_id": "r1", "seq": 6, "call_id": "c1", "name": "add", "output": 20}
    {"type": "token",       "run_id": "r1", "seq": 7, "text": "10 + 10 "}
    {"type": "token",       "run_id": "r1", "seq": 8, "text": "= 20"}
    {"type": "final",       "run_id": "r1", "seq": 9, "content": "10 + 10 = 20",
                            "tools_used": ["add"], "usage": {...}}
    {"type": "done",        "run_id": "r1", "seq": 10, "status": "completed"}

Adjacent `token` events (and adjacent `tool_args` of one call) that wait in the
run's queue while its reader is busy are merged into one before they are numbered,
so a slow relay sends fewer, larger events and never loses text (`stream.EventStream`).

Events are made by the constructors at the end of this module (`token(...)`, `done(...)`),
never as dict literals elsewhere; they carry `seq` 0 until the run's stream numbers them.
(No `from __future__ import annotations` here: TypedDict reads `NotRequired` at class creation.)
"""

import json
import math
from typing import Any, Literal, NotRequired, TypedDict

RUN_STARTED = "run_started"
TOOL_START = "tool_start"
TOOL_ARGS = "tool_args"
TOOL_RESULT = "tool_result"
STEP_END = "step_end"
TOKEN = "token"
FINAL = "final"
ERROR = "error"
DONE = "done"
APPROVAL_REQUESTED = "approval_requested"
APPROVAL_RESOLVED = "approval_resolved"

ApprovalDecision = Literal["approved", "denied", "expired"]
APPROVAL_DECISIONS: tuple[str, ...] = ("approved", "denied", "expired")

DoneStatus = Literal["completed", "cancelled", "error", "interrupted"]
DONE_STATUSES: tuple[str, ...] = ("completed", "cancelled", "error", "interrupted")

# Error codes of `error` events emitted by a run.
ERROR_MODEL_RATE_LIMITED = "model_rate_limited"
ERROR_MODEL_UNAVAILABLE = "model_unavailable"
ERROR_MODEL_FAILED = "model_error"
ERROR_MODEL_TIMEOUT = "model_timeout"
ERROR_TIMEOUT = "timeout"
ERROR_MAX_ITERATIONS = "max_iterations"
ERROR_INTERRUPTED = "interrupted"
ERROR_NOT_STORED = "not_stored"


class Usage(TypedDict):
    """Token usage summed over every LLM step of a run."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


class _Base(TypedDict):
    type: str
    run_id: str
    """The run this event belongs to."""
    seq: int
    """1 for the first event of a run, then +1 per event: a gap means something was missed."""


class RunStarted(_Base):
    """First event of every run."""

    model: str
    """Name of the model that answers (`offline-demo` for the built-in model)."""
    user_message: NotRequired[dict[str, Any]]
    """Added by the chat product: the stored user message `{id, content, client_id}`."""


class ToolStart(_Base):
    """The model started a tool call; its name is known, its arguments follow."""

    call_id: str
    name: str


class ToolArgs(_Base):
    """A fragment of the call's JSON arguments, as the model types it."""

    call_id: str
    delta: str


class ToolResult(_Base):
    """The tool ran: `output` holds its JSON-safe result, or `error` says why it failed."""

    call_id: str
    name: str
    output: NotRequired[Any]
    error: NotRequired[str]


class StepEnd(_Base):
    """An LLM step that made tool calls ended; the tools run next."""


class Token(_Base):
    """A piece of the final answer as clean text; all of a run's pieces join to `final.content`."""

    text: str


class Final(_Base):
    """The whole final answer."""

    content: str
    tools_used: list[str]
    usage: Usage


class Error(_Base):
    """Something failed; a `done` follows."""

    code: str
    message: str


class Done(_Base):
    """Last event of every run, exactly once, on every path."""

    status: DoneStatus


class ApprovalRequested(_Base):
    """The run waits for a person to approve or deny this tool call (its card was started already)."""

    approval_id: str
    call_id: str
    name: str
    args: dict[str, Any]
    """The call's arguments, parsed."""


class ApprovalResolved(_Base):
    """The decision on an approval: the tool runs (`approved`) or not (`denied`, `expired`)."""

    approval_id: str
    decision: ApprovalDecision
    by: str | None
    """Who decided (their username); null when it expired."""


Event = (
    RunStarted
    | ToolStart
    | ToolArgs
    | ToolResult
    | StepEnd
    | Token
    | Final
    | Error
    | Done
    | ApprovalRequested
    | ApprovalResolved
)
"""Any run event."""

SCHEMAS: dict[str, type[TypedDict]] = {  # type: ignore[valid-type]
    RUN_STARTED: RunStarted,
    TOOL_START: ToolStart,
    TOOL_ARGS: ToolArgs,
    TOOL_RESULT: ToolResult,
    STEP_END: StepEnd,
    TOKEN: Token,
    FINAL: Final,
    ERROR: Error,
    DONE: Done,
    APPROVAL_REQUESTED: ApprovalRequested,
    APPROVAL_RESOLVED: ApprovalResolved,
}

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "run_id": (str,),
    "seq": (int,),
    "model": (str,),
    "user_message": (dict,),
    "call_id": (str,),
    "name": (str,),
    "delta": (str,),
    "text": (str,),
    "content": (str,),
    "tools_used": (list,),
    "usage": (dict,),
    "code": (str,),
    "message": (str,),
    "status": (str,),
    "error": (str,),
    "approval_id": (str,),
    "args": (dict,),
    "decision": (str,),
    "by": (str, type(None)),
}


def validate_event(event: Event) -> None:
    """Raise ValueError unless `event` matches its schema exactly: no missing, unknown or mistyped key."""
    schema = SCHEMAS.get(event.get("type"))  # type: ignore[arg-type]
    if schema is None:
        raise ValueError(f"unknown event type: {event.get('type')!r}")
    required = set(schema.__required_keys__)
    allowed = required | set(schema.__optional_keys__)
    keys = set(event)
    if missing := required - keys:
        raise ValueError(f"{event['type']} misses {sorted(missing)}")
    if unknown := keys - allowed:
        raise ValueError(f"{event['type']} has unknown keys {sorted(unknown)}")
    for key, value in event.items():
        expected = _FIELD_TYPES.get(key)
        if expected and (not isinstance(value, expected) or isinstance(value, bool)):
            raise ValueError(f"{event['type']}.{key} has type {type(value).__name__}")
    if event["seq"] < 1:
        raise ValueError("seq starts at 1")
    if event["type"] == TOOL_RESULT and ("output" in event) == ("error" in event):
        raise ValueError("tool_result carries exactly one of output or error")
    if event["type"] == APPROVAL_RESOLVED and event["decision"] not in APPROVAL_DECISIONS:
        raise ValueError(f"unknown approval decision {event['decision']!r}")
    if event["type"] == DONE and event["status"] not in DONE_STATUSES:
        raise ValueError(f"unknown done status {event['status']!r}")
    if isinstance(event.get("output"), float) and not math.isfinite(event["output"]):
        raise ValueError("tool_result.output is not finite")


def is_mergeable(first: Event, second: Event) -> bool:
    """Whether `second` can be folded into `first` (adjacent tokens, or args of one call)."""
    if first["type"] != second["type"]:
        return False
    if first["type"] == TOKEN:
        return True
    return first["type"] == TOOL_ARGS and first["call_id"] == second["call_id"]


def merge_into(first: Event, second: Event) -> None:
    """Fold `second`'s text into `first` (see `is_mergeable`)."""
    key = "text" if first["type"] == TOKEN else "delta"
    first[key] += second[key]


def encode(event: Event) -> str:
    """The event as compact JSON text: the one encoding it gets on its way out."""
    return json.dumps(event, separators=(",", ":"))


# Constructors: the only way events are made. `seq` is 0 until the run's stream numbers the event.


def run_started(*, run_id: str, model: str, seq: int = 0) -> RunStarted:
    """The first event of a run."""
    return {"type": RUN_STARTED, "run_id": run_id, "seq": seq, "model": model}


def tool_start(*, run_id: str, call_id: str, name: str, seq: int = 0) -> ToolStart:
    """The model started calling tool `name`."""
    return {"type": TOOL_START, "run_id": run_id, "seq": seq, "call_id": call_id, "name": name}


def tool_args(*, run_id: str, call_id: str, delta: str, seq: int = 0) -> ToolArgs:
    """More of a call's JSON arguments."""
    return {"type": TOOL_ARGS, "run_id": run_id, "seq": seq, "call_id": call_id, "delta": delta}


def tool_result(
    *, run_id: str, call_id: str, name: str, output: Any = None, error: str | None = None, seq: int = 0
) -> ToolResult:
    """A tool's outcome: its output, or (when `error` is given) why it failed."""
    event: ToolResult = {"type": TOOL_RESULT, "run_id": run_id, "seq": seq, "call_id": call_id, "name": name}
    if error is None:
        event["output"] = output
    else:
        event["error"] = error
    return event


def step_end(*, run_id: str, seq: int = 0) -> StepEnd:
    """An LLM step that called tools ended."""
    return {"type": STEP_END, "run_id": run_id, "seq": seq}


def token(*, run_id: str, text: str, seq: int = 0) -> Token:
    """A piece of the final answer."""
    return {"type": TOKEN, "run_id": run_id, "seq": seq, "text": text}


def final(*, run_id: str, content: str, tools_used: list[str], usage: Usage, seq: int = 0) -> Final:
    """The whole answer of a completed run."""
    return {
        "type": FINAL,
        "run_id": run_id,
        "seq": seq,
        "content": content,
        "tools_used": tools_used,
        "usage": usage,
    }


def error(*, run_id: str, code: str, message: str, seq: int = 0) -> Error:
    """Something failed; a `done` follows."""
    return {"type": ERROR, "run_id": run_id, "seq": seq, "code": code, "message": message}


def done(*, run_id: str, status: DoneStatus, seq: int = 0) -> Done:
    """The last event of a run."""
    return {"type": DONE, "run_id": run_id, "seq": seq, "status": status}


def approval_requested(
    *, run_id: str, approval_id: str, call_id: str, name: str, args: dict[str, Any], seq: int = 0
) -> ApprovalRequested:
    """The run waits for a decision on a tool call."""
    return {
        "type": APPROVAL_REQUESTED,
        "run_id": run_id,
        "seq": seq,
        "approval_id": approval_id,
        "call_id": call_id,
        "name": name,
        "args": args,
    }


def approval_resolved(
    *, run_id: str, approval_id: str, decision: ApprovalDecision, by: str | None, seq: int = 0
) -> ApprovalResolved:
    """The decision on an approval."""
    return {
        "type": APPROVAL_RESOLVED,
        "run_id": run_id,
        "seq": seq,
        "approval_id": approval_id,
        "decision": decision,
        "by": by,
    }
