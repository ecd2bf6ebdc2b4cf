"""Approval of risky tool calls: the run waits, every tab can answer, the first decision wins, on record."""

from __future__ import annotations

import json
import time

import pytest
from channels.db import database_sync_to_async

from agent_runtime.approvals import DENIED, EXPIRED
from agent_runtime.llm import ModelConfig
from conversations import protocol
from conversations.approvals import ALREADY_DECIDED, NO_SUCH_APPROVAL
from conversations.models import Conversation, ToolApproval
from tests.fake_openai import StreamResponse, content_chunks, tool_calls_chunks
from tests.support.answers import wait_until_answered
from tests.support.api import TokenClient
from tests.support.runs import assert_well_formed
from tests.support.tabs import open_tab

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def refunds(settings, fake_openai):
    settings.AGENT_ASSISTANTS = ["tests.assistants.example.Refunds"]
    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    return fake_openai


def refund_then_answer(fake_openai, order: int = 7) -> None:
    fake_openai.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "refund", ['{"order": ', f"{order}}}"])])),
        StreamResponse(content_chunks(["Done."])),
    )


async def two_tabs(conversation, user):
    tabs = []
    for _ in range(2):
        tab, connected, _ = await open_tab(conversation.pk, user)
        assert connected
        await tab.receive()
        tabs.append(tab)
    return tabs


def refunded(user) -> list[str]:
    return list(Conversation.objects.filter(owner=user, title__startswith="refunded").values_list("title", flat=True))


async def waiting_approval(tab) -> dict:
    frames = await tab.receive_until(lambda f: f.get("type") == "approval_requested")
    return frames[-1]


def decide(approval_id: str, decision: str) -> dict:
    return {"type": "approval", "approval_id": approval_id, "decision": decision}


async def test_approved_from_the_second_tab_the_tool_runs_and_every_tab_sees_it(refunds, conversation, alice):
    refund_then_answer(refunds)
    first, second = await two_tabs(conversation, alice)

    await first.ask("Refund order 7")
    request = await waiting_approval(second)
    assert (request["name"], request["args"]) == ("refund", {"order": 7})
    assert await database_sync_to_async(refunded)(alice) == []  # not before a person says so
    await second.send(decide(request["approval_id"], "approve"))
    seen = [await tab.run_events_until_done() for tab in (first, second)]

    assert seen[0] == seen[1]
    assert_well_formed(seen[0])
    resolved = next(e for e in seen[0] if e["type"] == "approval_resolved")
    assert (resolved["decision"], resolved["by"]) == ("approved", "alice")
    result = next(e for e in seen[0] if e["type"] == "tool_result")
    assert result["output"] == "refunded order 7"
    assert seen[0][-1]["status"] == "completed"
    assert await database_sync_to_async(refunded)(alice) == ["refunded order 7"]
    record = await database_sync_to_async(ToolApproval.objects.select_related("decided_by").get)()
    assert (record.tool, record.arguments, record.decision) == ("refund", {"order": 7}, "approved")
    assert record.decided_by == alice and record.decided_at is not None
    _user, answer = await wait_until_answered(conversation)
    assert answer.tool_steps[0]["approval"] == {
        "approval_id": request["approval_id"],
        "decision": "approved",
        "by": "alice",
    }


async def test_denied_from_the_first_tab_the_tool_never_runs_and_the_model_is_told(refunds, conversation, alice):
    refund_then_answer(refunds)
    first, _second = await two_tabs(conversation, alice)

    await first.ask("Refund order 7")
    request = await waiting_approval(first)
    await first.send(decide(request["approval_id"], "deny"))
    seen = await first.run_events_until_done()

    result = next(e for e in seen if e["type"] == "tool_result")
    assert result["error"] == DENIED
    assert seen[-1]["status"] == "completed"
    assert await database_sync_to_async(refunded)(alice) == []
    assert f"Error: {DENIED}" in json.dumps(refunds.requests[1]["messages"])


async def test_no_decision_in_time_expires_and_counts_as_denied(refunds, conversation, alice, settings):
    settings.AGENT_APPROVAL_TIMEOUT = 0.6
    refund_then_answer(refunds)
    tab, _ = await two_tabs(conversation, alice)

    await tab.ask("Refund order 7")
    seen = await tab.run_events_until_done()

    resolved = next(e for e in seen if e["type"] == "approval_resolved")
    assert (resolved["decision"], resolved["by"]) == ("expired", None)
    assert next(e for e in seen if e["type"] == "tool_result")["error"] == EXPIRED
    assert await database_sync_to_async(refunded)(alice) == []
    assert (await database_sync_to_async(ToolApproval.objects.get)()).decision == "expired"


async def test_waiting_does_not_count_against_the_run_deadline(refunds, conversation, alice, settings):
    deadline = settings.AGENT_RUN_TIMEOUT = 1.0  # ample for the run's own work, even on a busy machine
    refund_then_answer(refunds)
    tab, _ = await two_tabs(conversation, alice)

    await tab.ask("Refund order 7")
    await tab.receive_until(lambda f: f.get("type") == "run_started")
    started = time.monotonic()  # the run's deadline counts from before its `run_started` went out
    request = await waiting_approval(tab)
    # A wait that proves a negative: nothing reaches the tab (no `timeout` error, no `done`) until the
    # deadline would have passed had waiting counted, and its error had had time to arrive (0.3 s).
    past_deadline = started + deadline + 0.3 - time.monotonic()
    assert await tab.communicator.receive_nothing(timeout=max(past_deadline, 0))
    await tab.send(decide(request["approval_id"], "approve"))

    seen = await tab.run_events_until_done()
    assert [e for e in seen if e["type"] == "error"] == []
    assert seen[-1]["status"] == "completed"


async def test_stop_while_waiting_ends_the_run_cancelled_and_the_approval_expired(refunds, conversation, alice):
    refund_then_answer(refunds)
    first, second = await two_tabs(conversation, alice)

    await first.ask("Refund order 7")
    request = await waiting_approval(second)
    await second.send({"type": "stop"})
    seen = await first.run_events_until_done()

    assert seen[-1]["status"] == "cancelled"
    assert [e["decision"] for e in seen if e["type"] == "approval_resolved"] == ["expired"]
    assert await database_sync_to_async(refunded)(alice) == []
    await second.send(decide(request["approval_id"], "approve"))
    late = (await second.receive_until(lambda f: f.get("code") == protocol.ALREADY_DECIDED))[-1]
    assert late["message"] == ALREADY_DECIDED.format(decision="expired")


async def test_a_tab_that_joins_while_waiting_gets_the_pending_approval_in_its_snapshot(refunds, conversation, alice):
    refund_then_answer(refunds)
    first, _ = await two_tabs(conversation, alice)
    await first.ask("Refund order 7")
    request = await waiting_approval(first)

    late, connected, _ = await open_tab(conversation.pk, alice)
    assert connected
    snapshot = await late.receive()

    replayed = snapshot["active_run"]["events"]
    assert [e for e in replayed if e["type"] == "approval_requested"] == [request]
    assert not any(e["type"] == "approval_resolved" for e in replayed)
    await late.send(decide(request["approval_id"], "approve"))
    assert (await first.run_events_until_done())[-1]["status"] == "completed"


async def test_the_first_decision_wins_the_second_is_already_decided_on_socket_and_api(
    refunds,
    conversation,
    alice,
    alice_token,
):
    refund_then_answer(refunds)
    first, second = await two_tabs(conversation, alice)
    await first.ask("Refund order 7")
    request = await waiting_approval(first)

    await first.send(decide(request["approval_id"], "deny"))
    await first.run_events_until_done()
    await second.send(decide(request["approval_id"], "approve"))
    error = (await second.receive_until(lambda f: f["type"] == "error" and "seq" not in f))[-1]
    over_http = await TokenClient(alice_token).post(
        f"/api/approvals/{request['approval_id']}", {"decision": "approve"}, content_type="application/json"
    )

    assert (error["code"], error["message"]) == ("already_decided", ALREADY_DECIDED.format(decision="denied"))
    assert error["approval_id"] == request["approval_id"]
    assert over_http.status_code == 409
    assert over_http.json()["error"] == {"code": "already_decided", "message": error["message"]}
    assert await database_sync_to_async(refunded)(alice) == []


async def test_another_user_cannot_decide(refunds, conversation, alice, bob):
    from api.services import api_token_create

    refund_then_answer(refunds)
    tab, _ = await two_tabs(conversation, alice)
    await tab.ask("Refund order 7")
    request = await waiting_approval(tab)
    bobs_token = await database_sync_to_async(api_token_create)(user=bob, name="b")

    refused = await TokenClient(bobs_token.secret).post(
        f"/api/approvals/{request['approval_id']}", {"decision": "approve"}, content_type="application/json"
    )

    assert refused.status_code == 404
    assert refused.json()["error"] == {"code": "not_found", "message": NO_SUCH_APPROVAL}
    assert (await database_sync_to_async(ToolApproval.objects.get)()).decision == ""
    await tab.send(decide(request["approval_id"], "deny"))
    assert (await tab.run_events_until_done())[-1]["status"] == "completed"


async def test_the_api_decides_and_the_run_goes_on(refunds, conversation, alice, alice_token):
    refund_then_answer(refunds)
    tab, _ = await two_tabs(conversation, alice)
    await tab.ask("Refund order 7")
    request = await waiting_approval(tab)

    decided = await TokenClient(alice_token).post(
        f"/api/approvals/{request['approval_id']}", {"decision": "approve"}, content_type="application/json"
    )

    assert decided.status_code == 200
    assert decided.json() == {
        "approval_id": request["approval_id"],
        "decision": "approved",
        "by": "alice",
        "tool": "refund",
        "arguments": {"order": 7},
    }
    assert (await tab.run_events_until_done())[-1]["status"] == "completed"
    assert await database_sync_to_async(refunded)(alice) == ["refunded order 7"]


async def test_parallel_calls_each_get_their_own_approval_and_a_rule_decides_per_call(refunds, conversation, alice):
    refunds.enqueue(
        StreamResponse(
            tool_calls_chunks(
                [
                    ("c1", "refund", ['{"order": 1}']),
                    ("c2", "refund", ['{"order": 2}']),
                    ("c3", "pay", ['{"amount": 5}']),
                ]
            )
        ),
        StreamResponse(content_chunks(["Done."])),
    )
    tab, _ = await two_tabs(conversation, alice)
    await tab.ask("Refund orders 1 and 2, pay 5")
    requests = [await waiting_approval(tab), await waiting_approval(tab)]

    assert sorted(r["args"]["order"] for r in requests) == [1, 2]
    by_order = {r["args"]["order"]: r["approval_id"] for r in requests}
    await tab.send(decide(by_order[1], "approve"))
    # The approved refund runs while the other call still waits, and stores its row from the tool's
    # own thread. The next decision waits for its result: in the tests' shared in-memory SQLite
    # database a write meeting the decision's read of the same table fails at once ("database table
    # is locked"; a file database, as deployed, waits its turn).
    await tab.receive_until(lambda f: f.get("type") == "tool_result" and f.get("call_id") == "c1")
    await tab.send(decide(by_order[2], "deny"))
    seen = await tab.run_events_until_done()

    results = {e["call_id"]: e.get("output", e.get("error")) for e in seen if e["type"] == "tool_result"}
    assert results == {"c1": "refunded order 1", "c2": DENIED, "c3": "paid 5"}  # pay 5: under the rule's limit
    assert await database_sync_to_async(refunded)(alice) == ["refunded order 1"]


async def test_a_malformed_or_unknown_approval_frame_is_a_bad_request(refunds, conversation, alice):
    tab, _ = await two_tabs(conversation, alice)

    await tab.send({"type": "approval", "approval_id": "nope", "decision": "approve"})
    unknown = (await tab.receive_until(lambda f: f["type"] == "error"))[-1]
    await tab.send({"type": "approval", "approval_id": "nope", "decision": "maybe"})
    malformed = (await tab.receive_until(lambda f: f["type"] == "error"))[-1]

    assert (unknown["code"], unknown["message"], unknown["approval_id"]) == ("bad_request", NO_SUCH_APPROVAL, "nope")
    assert (malformed["code"], malformed["approval_id"]) == ("bad_request", "nope")  # the page offers the choice again
    assert "client_id" not in unknown  # not a refused send: nothing goes back into the composer
