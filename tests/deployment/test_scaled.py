"""Several server processes sharing Redis and PostgreSQL: one live stream, replay, stop, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import pytest
import pytest_asyncio
import redis
from websockets.exceptions import InvalidStatus

from tests.live_server import free_port
from tests.live_tabs import LiveTab, is_token_with
from tests.services import require_postgres, require_redis, require_redis_server_binary
from tests.support.deployments import live_deployment
from tests.support.runs import assert_well_formed
from tests.support.waits import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]


def start_redis(command):
    """A private Redis that this test may kill and restart."""
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="module")
def deployment():
    redis_url = require_redis()
    postgres_url = require_postgres()
    redis.Redis.from_url(redis_url).flushdb()
    with live_deployment(database_url=postgres_url, redis_url=redis_url, tokens_per_second=150) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def two_servers(deployment):
    return deployment.start_server(), deployment.start_server()


@pytest_asyncio.fixture
async def alice(deployment, two_servers):
    session = deployment.sign_up(two_servers[0])
    return session, session.new_conversation()


def stored_answer(deployment, conversation_id):
    rows = deployment.query(
        "SELECT status, content FROM conversations_message WHERE conversation_id = %s AND role = 'assistant' "
        "ORDER BY id DESC LIMIT 1",
        conversation_id,
    )
    return rows[0] if rows else None


async def wait_for_stored(deployment, conversation_id, seconds=20):
    """The answer's (status, content) once it is no longer being written."""

    def answered():
        row = stored_answer(deployment, conversation_id)
        return row if row and row[0] != "generating" else None

    return await eventually(
        answered, timeout=seconds, interval=0.1, message=f"the answer of conversation {conversation_id} is stored"
    )


async def test_tabs_on_two_processes_see_one_identical_stream(deployment, two_servers, alice):
    a, b = two_servers
    session, conversation = alice
    on_a = await LiveTab.open(a, session, conversation)
    on_b = await LiveTab.open(b, session, conversation)

    await on_a.ask("count to 150")
    await on_b.receive_until(is_token_with("30,"))
    late_on_b = await LiveTab.open(b, session, conversation)
    assert late_on_b.snapshot["active_run"]["events"], "the late tab gets the events so far"

    full = await on_a.run_events_until_done()
    assert await on_b.run_events_until_done() == full
    await late_on_b.run_events_until_done()
    assert late_on_b.caught_up_events() == full
    assert_well_formed(full)
    assert full[-2]["content"].endswith("149, 150.")
    assert await wait_for_stored(deployment, conversation) == ("completed", full[-2]["content"])


async def test_stop_from_a_tab_on_another_process_stops_the_run(deployment, two_servers, alice):
    a, b = two_servers
    session, conversation = alice
    on_a = await LiveTab.open(a, session, conversation)
    on_b = await LiveTab.open(b, session, conversation)

    await on_a.ask("count to 2000")
    await on_b.receive_until(is_token_with("10,"))
    await on_b.send({"type": "stop"})

    seen = await on_b.run_events_until_done()
    assert seen[-1]["status"] == "cancelled"
    assert (await on_a.run_events_until_done())[-1]["status"] == "cancelled"
    status, content = await wait_for_stored(deployment, conversation)
    assert status == "cancelled"
    assert content == "".join(e["text"] for e in seen if e["type"] == "token")
    assert content.startswith("1, 2, 3") and not content.endswith("2000.")


async def test_a_killed_process_leaves_an_interrupted_answer_and_tabs_are_told(deployment, alice):
    session, conversation = alice
    doomed, survivor = deployment.start_server(), deployment.start_server()
    on_doomed = await LiveTab.open(doomed, session, conversation)
    on_survivor = await LiveTab.open(survivor, session, conversation)

    await on_doomed.ask("count to 5000")
    await on_survivor.receive_until(is_token_with("40,"))
    deployment.kill(doomed)
    killed_at = time.monotonic()

    seen = await on_survivor.run_events_until_done()
    assert time.monotonic() - killed_at < 60
    assert [e["type"] for e in seen[-2:]] == ["error", "done"]
    assert seen[-2]["code"] == "interrupted"
    assert seen[-1]["status"] == "interrupted"
    assert [e["seq"] for e in on_survivor.caught_up_events()] == list(range(1, seen[-1]["seq"] + 1))
    status, content = stored_answer(deployment, conversation)
    assert status == "interrupted"
    assert content.startswith("1, 2, 3") and "40," in content


async def test_redis_restarted_mid_run_still_stores_the_answer(tmp_path):
    binary = require_redis_server_binary()
    postgres_url = require_postgres()
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(tmp_path)]  # fmt: skip
    private_redis = start_redis(command)
    try:
        await asyncio.sleep(0.5)
        with live_deployment(
            database_url=postgres_url, redis_url=f"redis://127.0.0.1:{port}/0", tokens_per_second=100
        ) as deployment:
            server = deployment.start_server()
            session = deployment.sign_up(server)
            conversation = session.new_conversation()
            tab = await LiveTab.open(server, session, conversation)
            await tab.ask("count to 400")
            await tab.receive_until(is_token_with("20,"))

            os.killpg(private_redis.pid, signal.SIGKILL)
            private_redis.wait()
            await asyncio.sleep(1)
            private_redis = start_redis(command)

            status, content = await wait_for_stored(deployment, conversation, seconds=30)
            assert status == "completed"
            assert content == ", ".join(str(n) for n in range(1, 401)) + "."
            reconnected = await LiveTab.open(server, session, conversation)
            assert reconnected.snapshot["messages"][-1]["content"] == content
    finally:
        os.killpg(private_redis.pid, signal.SIGKILL)


async def test_fast_tokens_are_coalesced_into_fewer_sends_and_the_text_is_exact(deployment):
    server = deployment.start_server(OFFLINE_MODEL_TOKENS_PER_SECOND="0")
    session = deployment.sign_up(server)
    conversation = session.new_conversation()
    tabs = [await LiveTab.open(server, session, conversation) for _ in range(3)]

    await tabs[0].ask("count to 1000")
    expected = ", ".join(str(n) for n in range(1, 1001)) + "."
    for text, live_tokens in await asyncio.gather(*(tab.answer_like_the_page() for tab in tabs)):
        assert text == expected
        assert 0 < live_tokens < 1000 * 0.2


async def test_redis_down_when_a_tab_connects_is_a_clear_refusal_not_a_hang():
    postgres_url = require_postgres()
    with live_deployment(database_url=postgres_url, redis_url=f"redis://127.0.0.1:{free_port()}/0") as deployment:
        server = deployment.start_server()
        session = deployment.sign_up(server)
        conversation = session.new_conversation()
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            await LiveTab.open(server, session, conversation)
        # Refused at the handshake (403 when joining the group fails, 500 when the layer cannot
        # even open the socket's channel): either way at once, and the page retries.
        assert refused.value.response.status_code in (403, 500)
        assert time.monotonic() - started < 10
