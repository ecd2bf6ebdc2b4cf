"""What a run did, for the caller to persist: its answer, tool steps, usage and outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolStep:
    """One tool call as it happened: what was asked and what came back."""

    call_id: str
    name: str
    args: Any
    output: Any = None
    error: str | None = None
    approval: dict[str, Any] | None = None
    """`{approval_id, decision, by}` when the call needed a person's approval."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form, for storage."""
        step = {"call_id": self.call_id, "name": self.name, "args": self.args}
        if self.error is None:
            step["output"] = self.output
        else:
            step["error"] = self.error
        if self.approval is not None:
            step["approval"] = self.approval
        return step


@dataclass
class RunReport:
    """What a run did, for the caller to persist (filled in as the run goes)."""

    run_id: str
    model: str
    status: str = "running"
    content: str = ""
    tool_steps: list[ToolStep] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
    usage_estimated: bool = False
    """Part of `usage` is an estimate: a model call was cut short (stopped, timed out, failed) before
    the model reported its usage."""
    error_code: str | None = None
    error_message: str | None = None
    started: float = field(default_factory=time.time)
    first_output: float | None = None
    """When the run first showed answer text or a tool call (`time.time()`); None when it never did."""
    finished: float | None = None

    def usage_stored(self) -> dict[str, int | bool]:
        """`usage` as stored with the answer: `"estimated": true` when part of it is an estimate."""
        return {**self.usage, "estimated": True} if self.usage_estimated else dict(self.usage)

    @property
    def tools_used(self) -> list[str]:
        """Names of the tools that ran successfully, first use first."""
        return list(dict.fromkeys(s.name for s in self.tool_steps if s.error is None))
