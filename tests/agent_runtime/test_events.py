"""The event schemas reject what the protocol does not allow."""

from __future__ import annotations

import pytest

from agent_runtime.events import validate_event


def test_a_valid_event_passes():
    validate_event({"type": "token", "run_id": "r", "seq": 3, "text": "hi"})


@pytest.mark.parametrize(
    "event",
    [
        {"type": "token", "run_id": "r", "seq": 3},
        {"type": "token", "run_id": "r", "seq": 3, "text": "hi", "extra": 1},
        {"type": "token", "run_id": "r", "seq": "3", "text": "hi"},
        {"type": "token", "run_id": "r", "seq": 0, "text": "hi"},
        {"type": "nope", "run_id": "r", "seq": 1},
        {"type": "done", "run_id": "r", "seq": 1, "status": "finished"},
        {"type": "tool_result", "run_id": "r", "seq": 1, "call_id": "c", "name": "add"},
        {"type": "tool_result", "run_id": "r", "seq": 1, "call_id": "c", "name": "add", "output": 1, "error": "x"},
        {"type": "tool_result", "run_id": "r", "seq": 1, "call_id": "c", "name": "add", "output": float("nan")},
    ],
)
def test_invalid_events_are_rejected(event):
    with pytest.raises(ValueError):
        validate_event(event)
