"""Approvals of risky tool calls: stored, decided from any tab, process or the API; the first decision wins.

The run's `RunApprovals` gate stores a `ToolApproval` and waits. A decision (`approval_decide`) is a
conditional update of that row, so exactly one decision counts, whichever process makes it; the
waiting run learns of it at once when it is decided in its own process (or a tab on its process
hears the group message), and otherwise from the row, which it reads every `POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser

from agent_runtime.approvals import ApprovalOutcome, ApprovalRequest
from conversations import telemetry
from conversations.models import ToolApproval
from conversations.process import process_state

POLL_SECONDS = 0.5
NO_SUCH_APPROVAL = "No such approval waiting in your conversations."
ALREADY_DECIDED = "This tool call was already {decision}; the first decision counts."
BAD_DECISION = "An approval frame needs an 'approval_id' and a 'decision' of 'approve' or 'deny'."
DECISIONS = {"approve": ToolApproval.Decision.APPROVED, "deny": ToolApproval.Decision.DENIED}


class ApprovalNotFound(Exception):
    """No approval with that id in the user's conversations."""


class AlreadyDecided(Exception):
    """The approval was decided (or expired) before; `decision` says how."""

    def __init__(self, decision: str) -> None:
        super().__init__(decision)
        self.decision = decision


def approval_create(*, conversation_id: int, message_id: int, run_id: str, request: ApprovalRequest) -> ToolApproval:
    """Store a tool call waiting for a decision."""
    return ToolApproval.objects.create(
        conversation_id=conversation_id,
        message_id=message_id,
        run_id=run_id,
        approval_id=request.approval_id,
        call_id=request.call_id,
        tool=request.name,
        arguments=request.args,
    )


def approval_decide(*, approval_id: str, user: AbstractBaseUser, decision: str) -> ToolApproval:
    """Decide a waiting approval of one of `user`'s conversations (`decision`: approve or deny).

    Raises ApprovalNotFound (not theirs, or no such id) or AlreadyDecided (someone was first).
    """
    if decision not in DECISIONS:
        raise ValueError(decision)
    owned = ToolApproval.objects.filter(approval_id=approval_id, conversation__owner=user)
    decided = owned.filter(decision="").update(
        decision=DECISIONS[decision], decided_by=user, decided_at=datetime.now(UTC)
    )
    approval = owned.select_related("decided_by").first()
    if approval is None:
        raise ApprovalNotFound(approval_id)
    if not decided:
        raise AlreadyDecided(approval.decision)
    return approval


def approval_expire(*, approval_id: str) -> bool:
    """Mark a waiting approval expired; False when it was decided first."""
    waiting = ToolApproval.objects.filter(approval_id=approval_id, decision="")
    return bool(waiting.update(decision=ToolApproval.Decision.EXPIRED, decided_at=datetime.now(UTC)))


def approvals_expire_for_run(*, run_id: str) -> list[str]:
    """Expire every approval still waiting in a run (it died); their ids."""
    waiting = ToolApproval.objects.filter(run_id=run_id, decision="")
    ids = list(waiting.values_list("approval_id", flat=True))
    waiting.update(decision=ToolApproval.Decision.EXPIRED, decided_at=datetime.now(UTC))
    return ids


def approval_outcome(*, approval_id: str) -> ApprovalOutcome | None:
    """The decision on an approval, or None while it waits."""
    approval = ToolApproval.objects.filter(approval_id=approval_id).select_related("decided_by").first()
    if approval is None or not approval.decision:
        return None
    by = approval.decided_by.get_username() if approval.decided_by is not None else None
    return ApprovalOutcome(decision=approval.decision, by=by)  # type: ignore[arg-type]


def approval_payload(approval: ToolApproval) -> dict[str, Any]:
    """An approval as the API answers it."""
    return {
        "approval_id": approval.approval_id,
        "decision": approval.decision or None,
        "by": approval.decided_by.get_username() if approval.decided_by is not None else None,
        "tool": approval.tool,
        "arguments": approval.arguments,
    }


def approval_wake_here(approval_id: str) -> None:
    """A decision was made (maybe elsewhere): wake the run waiting for it, if it waits in this process."""
    event = process_state().approval_waiters.get(approval_id)
    if event is not None:
        event.set()


class RunApprovals:
    """The approval gate of one run: store the request, wait for a decision, expire it on time."""

    def __init__(self, *, conversation_id: int, message_id: int, run_id: str, timeout: float) -> None:
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.run_id = run_id
        self.timeout = timeout

    async def decide(self, request: ApprovalRequest) -> ApprovalOutcome:
        """Wait for a person (or the timeout, which expires it); a stop expires it too."""
        await database_sync_to_async(approval_create)(
            conversation_id=self.conversation_id, message_id=self.message_id, run_id=self.run_id, request=request
        )
        state = process_state()
        woken = state.approval_waiters[request.approval_id] = asyncio.Event()
        telemetry.APPROVALS_WAITING.inc()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            while loop.time() < deadline and not state.stopped:  # a stopped process waits for nobody
                outcome = await database_sync_to_async(approval_outcome)(approval_id=request.approval_id)
                if outcome is not None:
                    return outcome
                try:
                    await asyncio.wait_for(woken.wait(), min(POLL_SECONDS, max(0.0, deadline - loop.time())))
                except TimeoutError:
                    continue
                woken.clear()
            return await self._expire(request.approval_id)
        except asyncio.CancelledError:
            await asyncio.shield(self._expire(request.approval_id))
            raise
        finally:
            state.approval_waiters.pop(request.approval_id, None)
            telemetry.APPROVALS_WAITING.dec()

    async def _expire(self, approval_id: str) -> ApprovalOutcome:
        if await database_sync_to_async(approval_expire)(approval_id=approval_id):
            return ApprovalOutcome(decision="expired")
        outcome = await database_sync_to_async(approval_outcome)(approval_id=approval_id)
        return outcome or ApprovalOutcome(decision="expired")
