"""Redis dropping every connection mid-answer: no event is lost on the way, live or in the replay log."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from tests.live_tabs import LiveTab, is_token_with
from tests.services import require_postgres, require_redis
from tests.support.deployments import live_deployment
from tests.support.waits import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]

RUN_LOG_PREFIX = "agentchat:run:"


@pytest.fixture(scope="module")
def deployment():
    redis_url = require_redis()
    redis.Redis.from_url(redis_url).flushdb()
    with live_deployment(database_url=require_postgres(), redis_url=redis_url, tokens_per_second=100) as deployment:
        yield deployment


async def test_connections_dropped_mid_answer_lose_no_event_in_the_log_or_the_answer(deployment):
    server = deployment.start_server()
    session = deployment.sign_up(server)
    conversation = session.new_conversation()
    watcher = await LiveTab.open(server, session, conversation)
    client = redis.Redis.from_url(deployment.env["REDIS_URL"])

    await watcher.ask("count to 200")
    started = (await watcher.receive_until(lambda f: f.get("type") == "run_started"))[-1]
    await watcher.receive_until(is_token_with("20,"))
    for _ in range(4):  # every connection the server holds to Redis, again and again while it streams
        assert client.client_kill_filter(_type="normal", skipme=True) >= 1
        await asyncio.sleep(0.4)
    answer, _live = await watcher.answer_like_the_page()

    logged = [json.loads(f[b"e"]) for _id, f in client.xrange(RUN_LOG_PREFIX + started["run_id"])]
    seqs = [e["seq"] for e in logged]
    assert seqs == list(range(1, len(seqs) + 1)), "every seq in the replay log once, in order"
    assert logged[-1]["type"] == "done" and logged[-1]["status"] == "completed"
    assert "".join(e["text"] for e in logged if e["type"] == "token") == answer
    stored = await eventually(
        lambda: deployment.query(
            "SELECT status, content FROM conversations_message WHERE run_id = %s AND role = 'assistant'",
            started["run_id"],
        )
    )
    assert stored == [("completed", answer)]
    assert answer.endswith("200.")
    await watcher.close()
