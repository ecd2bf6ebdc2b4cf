"""Approvals across processes: a tab served by process B approves a run executing on process A."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, tool_calls_chunks
from tests.live_tabs import LiveTab
from tests.services import require_postgres, require_redis
from tests.support.deployments import live_deployment

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(fake):
    redis_url = require_redis()
    postgres_url = require_postgres()
    redis.Redis.from_url(redis_url).flushdb()
    with live_deployment(
        database_url=postgres_url,
        redis_url=redis_url,
        extra_env={
            "AGENT_ASSISTANTS": "tests.assistants.example.Refunds",
            "OPENAI_API_KEY": "test",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_MAX_RETRIES": "0",
        },
    ) as deployment:
        yield deployment


async def test_a_tab_on_process_b_approves_a_run_on_process_a_within_a_second(deployment, fake):
    process_a, process_b = deployment.start_server(), deployment.start_server()
    session = deployment.sign_up(process_a)
    conversation_id = session.new_conversation()
    fake.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "refund", ['{"order": 42}'])])),
        StreamResponse(content_chunks(["Refunded."])),
    )
    on_a = await LiveTab.open(process_a, session, conversation_id)
    on_b = await LiveTab.open(process_b, session, conversation_id)

    await on_a.ask("Refund order 42")
    request = (await on_b.receive_until(lambda f: f.get("type") == "approval_requested"))[-1]
    decided_at = time.monotonic()
    await on_b.send({"type": "approval", "approval_id": request["approval_id"], "decision": "approve"})
    await on_a.receive_until(lambda f: f.get("type") == "tool_result")
    waited = time.monotonic() - decided_at
    seen_a = await on_a.run_events_until_done()
    seen_b = await on_b.run_events_until_done()

    assert waited < 1.0
    assert seen_a == seen_b
    assert seen_a[-1]["status"] == "completed"
    assert next(e for e in seen_a if e["type"] == "tool_result")["output"] == "refunded order 42"
    rows = deployment.query(
        "SELECT decision FROM conversations_toolapproval WHERE approval_id = %s", request["approval_id"]
    )
    assert rows == [("approved",)]
    await asyncio.gather(on_a.close(), on_b.close())
