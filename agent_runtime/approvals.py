"""Approval of risky tool calls: what the executor asks, and who answers.

Before a tool that needs approval runs, the executor emits `approval_requested` and awaits its
`ApprovalGate`, which the product provides (it stores the request, lets any tab or the API
decide, and knows about other processes). The run's deadline does not run while it waits, and
it holds no model request open. `approved` runs the tool; `denied` or `expired` does not, and
the model is told so as the tool's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agent_runtime.events import ApprovalDecision

DENIED = "denied by the user"
EXPIRED = "no decision in time: treated as denied by the user"


@dataclass(frozen=True)
class ApprovalRequest:
    """One tool call waiting for a person."""

    approval_id: str
    call_id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ApprovalOutcome:
    """The decision, and who made it (None when it expired)."""

    decision: ApprovalDecision
    by: str | None = None

    @property
    def refusal(self) -> str | None:
        """What the model is told instead of the tool's result, or None when approved."""
        if self.decision == "approved":
            return None
        return DENIED if self.decision == "denied" else EXPIRED


class ApprovalGate(Protocol):
    """Decides approvals for one run."""

    async def decide(self, request: ApprovalRequest) -> ApprovalOutcome:
        """Wait for the decision on `request` (cancelled when the run is stopped)."""
        ...


class NoApprovals:
    """The gate of a run nobody watches: every call that needs approval is denied."""

    async def decide(self, request: ApprovalRequest) -> ApprovalOutcome:
        """Deny at once."""
        return ApprovalOutcome(decision="denied", by=None)
