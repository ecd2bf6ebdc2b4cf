"""A process whose clock runs a minute ahead: it never takes a live run on another process for dead."""

from __future__ import annotations

import asyncio

import pytest
import redis

from tests.live_server import APPLICATION, asgi_server, server_command
from tests.live_tabs import LiveTab, is_token_with
from tests.services import require_faketime, require_postgres, require_redis
from tests.support.deployments import live_deployment
from tests.support.waits import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]

AHEAD = "+60s"


@pytest.fixture(scope="module")
def deployment():
    redis_url = require_redis()
    redis.Redis.from_url(redis_url).flushdb()
    with live_deployment(database_url=require_postgres(), redis_url=redis_url, tokens_per_second=60) as deployment:
        yield deployment


async def test_a_process_a_minute_ahead_leaves_a_live_run_alone_and_refuses_a_second_one(deployment):
    faketime = require_faketime()
    on_time = deployment.start_server()
    ahead = deployment.start_server(
        command=lambda port: [faketime, "-f", AHEAD, *server_command(asgi_server(), APPLICATION, port)],
        FAKETIME_DONT_FAKE_MONOTONIC="1",  # only the wall clock is off, as with a bad NTP
    )
    session = deployment.sign_up(on_time)
    conversation = session.new_conversation()
    runner = await LiveTab.open(on_time, session, conversation)
    watcher = await LiveTab.open(ahead, session, conversation)  # the process ahead sweeps once a second

    await runner.ask("count to 400", client_id="first")
    await watcher.receive_until(is_token_with("5,"))
    await asyncio.sleep(deployment_stale_seconds(deployment) + 2)  # several sweeps on the process ahead
    await watcher.send({"type": "send", "content": "a second question", "client_id": "second"})
    refused = (await watcher.receive_until(lambda f: f.get("type") == "error" and f.get("client_id") == "second"))[-1]
    seen = await runner.run_events_until_done()
    watched = await watcher.run_events_until_done()

    assert refused["code"] == "busy"
    assert seen[-1]["status"] == watched[-1]["status"] == "completed"
    assert not any(f.get("code") == "interrupted" for f in runner.frames + watcher.frames)
    rows = await eventually(
        lambda: deployment.query(
            "SELECT status, content FROM conversations_message WHERE conversation_id = %s AND role = 'assistant'",
            conversation,
        )
    )
    assert rows == [("completed", seen[-2]["content"])]
    await asyncio.gather(runner.close(), watcher.close())


def deployment_stale_seconds(deployment) -> float:
    return float(deployment.env["RUN_STALE_SECONDS"])
