"""The socket's protocol and the channel-layer messages: declared here, once, on the server.

Run events are declared in `agent_runtime/events.py`; this module declares everything else
that crosses the socket or the channel layer. The browser mirrors both in
`static/chat/protocol.js`, and `tests/test_protocol_drift.py` fails when they disagree.
`docs/protocol.md` documents them.
"""

from __future__ import annotations

from typing import Any

# Frames the browser sends.
CLIENT_SEND = "send"
CLIENT_STOP = "stop"
CLIENT_SYNC = "sync"
CLIENT_APPROVAL = "approval"
CLIENT_REGENERATE = "regenerate"
CLIENT_EDIT = "edit"
CLIENT_BRANCH = "branch"
CLIENT_SET_MODEL = "set_model"
CLIENT_FRAME_TYPES = (
    CLIENT_SEND,
    CLIENT_STOP,
    CLIENT_SYNC,
    CLIENT_APPROVAL,
    CLIENT_REGENERATE,
    CLIENT_EDIT,
    CLIENT_BRANCH,
    CLIENT_SET_MODEL,
)

# Frames the server sends that are not run events.
SERVER_SNAPSHOT = "snapshot"
SERVER_ERROR = "error"
SERVER_TITLE = "title"
SERVER_FEEDBACK = "feedback"
SERVER_MODEL = "model"
SERVER_BUDGET = "budget"
"""`{"type": "budget", "low": {"period", "remaining", "limit"} | null}`: after one of the user's answers
ends, when a token budget limits them; `low` is set under a fifth of a limit left (conversations/budgets.py)."""
SERVER_FRAME_TYPES = (SERVER_SNAPSHOT, SERVER_ERROR, SERVER_TITLE, SERVER_FEEDBACK, SERVER_MODEL, SERVER_BUDGET)

# Codes of direct errors: sent to one socket (or answered by the API), never part of a run.
BAD_REQUEST = "bad_request"
TOO_LONG = "too_long"
BUSY = "busy"
RATE_LIMITED = "rate_limited"
ASSISTANT_UNAVAILABLE = "assistant_unavailable"
ALREADY_DECIDED = "already_decided"
RESTARTING = "restarting"
QUOTA_EXCEEDED = "quota_exceeded"
"""Over the token budget (conversations/budgets.py); with `retry_after`: when it renews, or when the
answers being written end."""
MODEL_UNAVAILABLE = "model_unavailable"
"""A `set_model` (or the API's `model`) naming a model the conversation's assistant does not offer: a
direct error (no `run_id`, no `seq`). The run error of the same code (`agent_runtime.events`, inside a
run, with `seq`) is the model service unreachable; the frames' shapes tell them apart."""
DIRECT_ERROR_CODES = (
    BAD_REQUEST,
    TOO_LONG,
    BUSY,
    RATE_LIMITED,
    ASSISTANT_UNAVAILABLE,
    ALREADY_DECIDED,
    RESTARTING,
    QUOTA_EXCEEDED,
    MODEL_UNAVAILABLE,
)

# WebSocket close codes.
CLOSE_LOGGED_OUT = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_GONE = 4404
CLOSE_UNAVAILABLE = 4503
CLOSE_TOO_MANY_SYNCS = 4429
"""More `sync` and `branch` frames than `SYNC_MAX_PER_MINUTE` (they cost snapshots)."""
CLOSE_TOO_MANY_SOCKETS = 4429
# The server process is restarting (a deploy): the page reconnects at once, to another process.
CLOSE_SERVICE_RESTART = 1012
"""Sent right after the handshake: the user holds `SOCKETS_PER_USER` sockets open on this process."""
CLOSE_CODES = {
    "LOGGED_OUT": CLOSE_LOGGED_OUT,
    "NOT_ALLOWED": CLOSE_NOT_ALLOWED,
    "GONE": CLOSE_GONE,
    "UNAVAILABLE": CLOSE_UNAVAILABLE,
    "TOO_MANY_SYNCS": CLOSE_TOO_MANY_SYNCS,
    "TOO_MANY_SOCKETS": CLOSE_TOO_MANY_SOCKETS,
    "SERVICE_RESTART": CLOSE_SERVICE_RESTART,
}

# Channel-layer messages to a conversation's group ("a.b" dispatches to the consumer's `a_b`).
GROUP_RUN_EVENT = "run.event"
"""`{"type": "run.event", "text": <the event's JSON>}`: forwarded to the tab as it is."""
GROUP_RUN_STOP = "run.stop"
"""`{"type": "run.stop", "run_id": ...}`: cancel the run if it executes on this process."""
GROUP_CONVERSATION_DELETED = "conversation.deleted"
"""`{"type": "conversation.deleted"}`: close the tabs (4404)."""
GROUP_BRANCH_CHANGED = "branch.changed"
"""`{"type": "branch.changed"}`: the branch on screen changed (a regenerate, an edit, a version chosen):
send each tab a new snapshot."""
GROUP_CONVERSATION_TITLED = "conversation.titled"
"""`{"type": "conversation.titled", "title": ...}`: the conversation has a new title (renamed, or named by
the model): send each tab a `title` frame."""
GROUP_MODEL_CHANGED = "conversation.model_changed"
"""`{"type": "conversation.model_changed", "model": ...}`: the owner chose another model (the one that
answers now, a name of the assistant's `models`): send each tab a `model` frame."""
GROUP_FEEDBACK_CHANGED = "feedback.changed"
"""`{"type": "feedback.changed", "message_id", "run_id", "feedback"}`: the owner rated an answer: send each
tab a `feedback` frame."""
GROUP_APPROVAL_DECIDED = "approval.decided"
"""`{"type": "approval.decided", "approval_id": ...}`: wake the run waiting for it if it runs on this process."""

MAX_CLIENT_ID_ECHO = 64


# Builders: `*_message` is a channel-layer message to a conversation's group, `*_frame` a frame for
# one tab; both are dicts (the consumer encodes frames, the channel layer messages).


def group_name(conversation_id: int) -> str:
    """The channel-layer group of a conversation's tabs."""
    return f"conversation-{conversation_id}"


def run_event_message(text: str) -> dict[str, Any]:
    """The group message relaying one run event, already encoded."""
    return {"type": GROUP_RUN_EVENT, "text": text}


def run_stop_message(run_id: str) -> dict[str, Any]:
    """The group message asking the executing process to stop `run_id`."""
    return {"type": GROUP_RUN_STOP, "run_id": run_id}


def approval_decided_message(approval_id: str) -> dict[str, Any]:
    """The group message saying an approval was decided (the decision itself is in storage)."""
    return {"type": GROUP_APPROVAL_DECIDED, "approval_id": approval_id}


def branch_changed_message() -> dict[str, Any]:
    """The group message telling the tabs that the branch on screen changed."""
    return {"type": GROUP_BRANCH_CHANGED}


def conversation_titled_message(title: str) -> dict[str, Any]:
    """The group message telling the tabs of the conversation's new title."""
    return {"type": GROUP_CONVERSATION_TITLED, "title": title}


def title_frame(title: str) -> dict[str, Any]:
    """The conversation's new title, for a tab."""
    return {"type": SERVER_TITLE, "title": title}


def conversation_model_changed_message(model: str) -> dict[str, Any]:
    """The group message telling the tabs of the conversation's newly chosen model."""
    return {"type": GROUP_MODEL_CHANGED, "model": model}


def model_frame(model: str) -> dict[str, Any]:
    """The model that answers the conversation's next question, for a tab."""
    return {"type": SERVER_MODEL, "model": model}


def feedback_changed_message(*, message_id: int, run_id: str, feedback: dict[str, Any] | None) -> dict[str, Any]:
    """The group message carrying an answer's new feedback (`{rating, comment, updated}`)."""
    return {"type": GROUP_FEEDBACK_CHANGED, "message_id": message_id, "run_id": run_id, "feedback": feedback}


def feedback_frame(message: dict[str, Any]) -> dict[str, Any]:
    """An answer's new feedback, for a tab: the answer's `message_id` and `run_id` (a tab that watched it
    stream may not know its id yet) and `feedback`."""
    return {"type": SERVER_FEEDBACK, **{key: message[key] for key in ("message_id", "run_id", "feedback")}}


def conversation_deleted_message() -> dict[str, Any]:
    """The group message telling a deleted conversation's tabs to close."""
    return {"type": GROUP_CONVERSATION_DELETED}


def snapshot_frame(
    *, messages: list[dict[str, Any]], active_run: dict[str, Any] | None, model: str | None = None
) -> dict[str, Any]:
    """The stored messages, the events so far of the run streaming now, and the model that answers the
    next question (`model`, omitted when the conversation's assistant is gone)."""
    frame = {"type": SERVER_SNAPSHOT, "messages": messages, "active_run": active_run}
    if model is not None:
        frame["model"] = model
    return frame


def error_frame(
    code: str, message: str, *, client_id: Any = None, retry_after: int | None = None, approval_id: Any = None
) -> dict[str, Any]:
    """A direct error for one socket; names the refused send's `client_id`, or the
    `approval_id` of a refused decision (so the page can offer the choice again)."""
    frame: dict[str, Any] = {"type": SERVER_ERROR, "code": code, "message": message}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    if isinstance(approval_id, str) and approval_id:
        frame["approval_id"] = approval_id[:MAX_CLIENT_ID_ECHO]
    if isinstance(client_id, str) and client_id:
        frame["client_id"] = client_id[:MAX_CLIENT_ID_ECHO]
    return frame
