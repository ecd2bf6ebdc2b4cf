"""The process's state: one owner of its runs, waits, tasks and logs; a shutdown ends each, a reset forgets them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest
from channels.db import database_sync_to_async

from agent_runtime import events
from agent_runtime.approvals import ApprovalRequest
from agent_runtime.llm import ModelConfig
from conversations.approvals import RunApprovals
from conversations.event_log import RedisEventLog, get_event_log
from conversations.models import Message, ToolApproval
from conversations.process import ProcessState, process_state
from conversations.services import RUN_RESTARTED
from conversations.watchdog import ensure_watchdog
from tests.fake_openai import StreamResponse, content_chunks, tool_calls_chunks
from tests.services import require_redis
from tests.support.answers import stored_messages, wait_until_answered
from tests.support.runs import assert_well_formed
from tests.support.tabs import is_token_with

SHUTDOWN_TIMEOUT = 10.0


async def until(condition: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0) -> None:
    """Wait until `condition` holds, polling; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {within} s: {condition}")
        await asyncio.sleep(0.02)


async def forever() -> None:
    await asyncio.Event().wait()


async def counting(tabs, paced):
    """A tab whose run is counting slowly, and that run, once its first numbers are shown."""
    paced(100)
    tab = await tabs()
    await tab.ask("count to 500")
    await tab.receive_until(is_token_with("3,"))
    (active,) = process_state().runs.values()
    return tab, active


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_shutdown_ends_a_streaming_run_interrupted_with_one_done_and_its_answer_stored(tabs, conversation, paced):
    tab, active = await counting(tabs, paced)

    assert await process_state().shutdown(timeout=SHUTDOWN_TIMEOUT) == []

    assert process_state().runs == {}
    assert active.task is not None and active.task.done()
    seen = await tab.run_events_until_done()
    assert_well_formed(seen)
    assert [e["type"] for e in seen[-2:]] == ["error", "done"]
    assert seen[-2]["code"] == events.ERROR_INTERRUPTED
    assert seen[-1]["status"] == "interrupted"
    logged = await get_event_log().read(active.run_id)
    assert logged == seen  # the log holds the one `done` too: nothing came after it
    assistant = (await stored_messages(conversation))[-1]
    shown = "".join(e["text"] for e in seen if e["type"] == "token")
    assert (assistant.status, assistant.error) == ("interrupted", RUN_RESTARTED)
    assert assistant.content == shown
    assert assistant.content.startswith("1, 2, 3,")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_run_its_owner_stopped_before_the_shutdown_stays_cancelled(tabs, conversation, paced):
    tab, active = await counting(tabs, paced)
    await tab.send({"type": "stop"})
    await until(lambda: active.stopped)

    await process_state().shutdown(timeout=SHUTDOWN_TIMEOUT)

    seen = await tab.run_events_until_done()
    assert_well_formed(seen)
    assert seen[-1]["status"] == "cancelled"
    assert (await wait_until_answered(conversation))[-1].status == "cancelled"


@pytest.fixture
def refunds(settings, fake_openai):
    settings.AGENT_ASSISTANTS = ["tests.assistants.example.Refunds"]
    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    return fake_openai


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_run_waiting_for_approval_is_interrupted_and_its_approval_expired(refunds, tabs, conversation):
    refunds.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "refund", ['{"order": ', "7}"])])),
        StreamResponse(content_chunks(["Done."])),
    )
    tab = await tabs()
    await tab.ask("Refund order 7")
    await tab.receive_until(lambda f: f.get("type") == "approval_requested")
    await until(lambda: bool(process_state().approval_waiters))

    assert await process_state().shutdown(timeout=SHUTDOWN_TIMEOUT) == []

    seen = await tab.run_events_until_done()
    assert_well_formed(seen)
    assert [e["decision"] for e in seen if e["type"] == "approval_resolved"] == ["expired"]
    assert seen[-1]["status"] == "interrupted"
    assert process_state().approval_waiters == {}
    approval = await database_sync_to_async(ToolApproval.objects.get)()
    assert approval.decision == "expired"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_approval_wait_of_no_run_here_is_woken_by_the_shutdown_and_expires(conversation):
    create = database_sync_to_async(Message.objects.create)
    message = await create(conversation=conversation, role="assistant", status="generating", run_id="r1")
    gate = RunApprovals(conversation_id=conversation.pk, message_id=message.pk, run_id="r1", timeout=600)
    request = ApprovalRequest(approval_id="a1", call_id="c1", name="refund", args={"order": 7})
    waiting = asyncio.create_task(gate.decide(request))
    await until(lambda: "a1" in process_state().approval_waiters)

    await process_state().shutdown(timeout=SHUTDOWN_TIMEOUT)

    outcome = await asyncio.wait_for(waiting, SHUTDOWN_TIMEOUT)
    assert outcome.decision == "expired"
    assert process_state().approval_waiters == {}
    approval = await database_sync_to_async(ToolApproval.objects.get)(approval_id="a1")
    assert approval.decision == "expired"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_shutdown_cancels_the_background_tasks_and_starts_none_after(settings):
    settings.RUN_WATCHDOG = True
    settings.RUN_SWEEP_SECONDS = 3600
    state = process_state()
    ensure_watchdog()
    (sweeper,) = state.sweepers.values()
    title, warming = asyncio.create_task(forever()), asyncio.create_task(forever())
    state.title_tasks.add(title)
    state.warm_up_tasks.add(warming)

    await state.shutdown(timeout=SHUTDOWN_TIMEOUT)

    assert sweeper.cancelled() and title.cancelled() and warming.cancelled()
    assert not state.accepting_runs
    ensure_watchdog()
    assert state.sweepers[asyncio.get_running_loop()] is sweeper  # draining: no new sweep


@pytest.mark.asyncio
async def test_shutdown_with_nothing_running_returns_at_once_and_twice_is_fine():
    state = process_state()
    assert state.accepting_runs

    # Far below the timeout: nothing is waited for.
    assert await asyncio.wait_for(state.shutdown(timeout=60), 5) == []
    assert await asyncio.wait_for(state.shutdown(timeout=60), 5) == []

    assert state.draining and not state.accepting_runs


@pytest.mark.asyncio
async def test_shutdown_closes_the_redis_event_log_and_a_later_use_reconnects(settings):
    settings.REDIS_URL = require_redis()
    log = get_event_log()
    assert isinstance(log, RedisEventLog)
    run_id = f"process-test-{uuid4().hex}"
    event = events.token(run_id=run_id, text="hi", seq=1)
    await log.append(run_id, event, events.encode(event))

    await process_state().shutdown(timeout=SHUTDOWN_TIMEOUT)

    assert len(log._clients) == 0
    assert await log.read(run_id) == [event]  # through a new connection
    await log.finish(run_id)
    await log.close()


def test_reset_forgets_everything():
    state = ProcessState()
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(forever())
        state.runs[1] = object()  # type: ignore[assignment]
        state.approval_waiters["a1"] = asyncio.Event()
        state.title_tasks.add(task)
        state.warm_up_tasks.add(task)
        state.sweepers[loop] = task
        state.event_logs[""] = object()  # type: ignore[assignment]
        state.draining = state.stopped = True

        state.reset()

        assert (state.runs, state.approval_waiters, state.sweepers, state.event_logs) == ({}, {}, {}, {})
        assert state.title_tasks == state.warm_up_tasks == set()
        assert state.accepting_runs and not state.stopped
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    finally:
        loop.close()


def test_the_suite_starts_each_test_from_a_fresh_state():
    state = process_state()
    assert state.accepting_runs and not state.stopped
    assert not (state.runs or state.approval_waiters or state.title_tasks or state.sweepers or state.warm_up_tasks)
