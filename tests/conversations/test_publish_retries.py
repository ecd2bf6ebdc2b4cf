"""An event's append and send are retried when they fail, and the log keeps each `seq` once."""

from __future__ import annotations

import logging
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from agent_runtime import events
from conversations import runs
from conversations.event_log import KEY_PREFIX, RedisEventLog
from conversations.process import process_state
from tests.services import require_redis

pytestmark = pytest.mark.asyncio


class Flaky:
    """A log or layer whose first `failures` calls raise as a dropped connection does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple] = []

    async def __call__(self, *args) -> None:
        self.calls.append(args)
        if len(self.calls) <= self.failures:
            raise ConnectionError("Connection closed by server.")


@pytest.fixture
def flaky(monkeypatch):
    log, layer = Flaky(failures=2), Flaky(failures=1)
    monkeypatch.setattr(runs, "get_event_log", lambda: type("Log", (), {"append": log})())
    monkeypatch.setattr(runs, "get_channel_layer", lambda: type("Layer", (), {"group_send": layer})())
    monkeypatch.setattr(runs, "PUBLISH_RETRY_DELAYS", (0.0, 0.0, 0.0))
    return log, layer


async def test_a_failed_append_or_send_is_retried_until_it_goes_through(flaky, caplog):
    log, layer = flaky
    event = events.token(run_id="r1", seq=7, text="hi")

    with caplog.at_level(logging.WARNING):
        await runs.publish_event(1, "r1", event)

    assert len(log.calls) == 3 and len(layer.calls) == 2
    assert "logging event 7 of run r1 succeeded at attempt 3" in caplog.text


async def test_after_retries_give_up_the_next_events_are_tried_once_until_the_pause_ends(flaky, caplog):
    log, layer = flaky
    log.failures = layer.failures = 100

    await runs.publish_event(1, "r1", events.token(run_id="r1", seq=1, text="a"))
    await runs.publish_event(1, "r1", events.token(run_id="r1", seq=2, text="b"))

    assert len(log.calls) == 4 + 1  # the first event: every retry; the second, once
    assert "given up" in caplog.text
    process_state().publish_retries_paused_until = 0.0
    await runs.publish_event(1, "r1", events.token(run_id="r1", seq=3, text="c"))
    assert len(log.calls) == 4 + 1 + 4


async def test_the_redis_log_keeps_each_seq_once_however_often_it_is_appended():
    url = require_redis()
    log, run_id = RedisEventLog(url), uuid4().hex
    first, second = events.token(run_id=run_id, seq=1, text="a"), events.token(run_id=run_id, seq=2, text="b")

    for event in (first, first, second, first, second):  # retries after replies that were lost
        await log.append(run_id, event, events.encode(event))

    assert await log.read(run_id) == [first, second]
    client = aioredis.Redis.from_url(url)
    assert await client.ttl(KEY_PREFIX + run_id) > 0
    await client.delete(KEY_PREFIX + run_id)
    await client.aclose()
    await log.close()
