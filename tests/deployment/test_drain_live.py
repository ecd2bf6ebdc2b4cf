"""A deploy and a crash with two `manage.py serve` processes on PostgreSQL and Redis.

SIGTERM to the process writing an answer: it drains (no new runs, its sockets told to reconnect with
1012, its event streams ended), finishes the answer, then exits; every tab ends with the whole answer.
SIGKILL: the answer ends `interrupted` with at least what the heartbeat saved, within the stale limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed

from tests.live_server import Deployment, Server, Session
from tests.live_tabs import LiveTab, is_token_with
from tests.services import require_postgres, require_redis
from tests.support.deployments import live_deployment
from tests.support.waits import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]

QUESTION = "count to 160"
LAST_WORDS = "160."


@pytest.fixture(scope="module")
def deployment():
    redis_url = require_redis()
    redis.Redis.from_url(redis_url).flushdb()
    with live_deployment(
        database_url=require_postgres(),
        redis_url=redis_url,
        tokens_per_second=40,
        extra_env={"AGENT_DRAIN_SECONDS": "30"},
    ) as deployment:
        yield deployment


def stored(deployment: Deployment, run_id: str) -> list[tuple]:
    return deployment.query(
        "SELECT status, content, error FROM conversations_message WHERE run_id = %s AND role = 'assistant'", run_id
    )


async def follow_to_the_end(tab: LiveTab) -> None:
    """Read until the run's `done` (or the socket's close)."""
    with contextlib.suppress(ConnectionClosed):
        await tab.receive_until(lambda f: f.get("type") == "done")


def merged_events(*tabs: LiveTab) -> list[dict]:
    """What one page saw across its sockets (one after the other): snapshot events and live frames, by
    seq; fails if one seq came with two different contents."""
    seen: dict[int, dict] = {}
    for tab in tabs:
        for event in tab.caught_up_events():
            if event["seq"] in seen:
                assert seen[event["seq"]] == event, f"seq {event['seq']} differs between sockets"
            seen[event["seq"]] = event
    return [seen[seq] for seq in sorted(seen)]


async def sse_until_it_ends(server: Server, session: Session, conversation: int, headers: dict) -> list[str]:
    """The lines of an event stream until the server ends it."""
    lines: list[str] = []
    cookies = {"Cookie": session.cookie_header, **headers}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=30)) as client,
        client.stream("GET", f"{server.http_url}/api/conversations/{conversation}/stream", headers=cookies) as reply,
    ):
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            lines.append(line)
    return lines


async def test_sigterm_drains_the_answer_to_its_end_every_tab_whole_then_the_process_exits(deployment):
    writer, other = deployment.start_server(server="uvicorn"), deployment.start_server(server="uvicorn")
    session = deployment.sign_up(writer)
    conversation = session.new_conversation()
    on_writer = await LiveTab.open(writer, session, conversation)
    on_other = await LiveTab.open(other, session, conversation)
    follower = asyncio.ensure_future(sse_until_it_ends(writer, session, conversation, {}))

    await on_writer.ask(QUESTION)
    run_id = (await on_writer.receive_until(lambda f: f.get("type") == "run_started"))[-1]["run_id"]
    await on_writer.receive_until(is_token_with("20,"))
    signalled = time.monotonic()
    writer.process.send_signal(signal.SIGTERM)

    # The writer's tab is told to reconnect (1012) and does, to the other process, at once.
    with pytest.raises(ConnectionClosed) as closed:
        await on_writer.receive_until(lambda f: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    moved = await LiveTab.open(other, session, conversation)
    # The event stream on the draining process ends at once; its client resumes on the other one.
    streamed = await asyncio.wait_for(follower, 10)
    assert ": server restarting: reconnect with Last-Event-ID" in streamed
    last_id = [line.removeprefix("id: ") for line in streamed if line.startswith("id: ")][-1]
    resumed = asyncio.ensure_future(sse_until_it_ends(other, session, conversation, {"Last-Event-ID": last_id}))
    await asyncio.gather(follow_to_the_end(moved), follow_to_the_end(on_other))
    done_at = time.monotonic()
    exit_code = await asyncio.to_thread(writer.process.wait, 30)
    exited_at = time.monotonic()

    answer = stored(deployment, run_id)
    assert answer[0][:2] == ("completed", answer[0][1]) and answer[0][1].endswith(LAST_WORDS)
    for page in ([on_writer, moved], [on_other]):
        events = merged_events(*page)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "every seq once"
        assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
        assert "".join(e["text"] for e in events if e["type"] == "token") == answer[0][1]
    resumed_lines = await asyncio.wait_for(resumed, 30)
    resumed_events = [json.loads(line.removeprefix("data: ")) for line in resumed_lines if line.startswith("data: ")]
    assert resumed_events[0]["seq"] == int(last_id.split(":")[1]) + 1
    assert resumed_events[-1]["type"] == "done"
    assert exited_at - done_at < 5, f"the draining process exited {exited_at - done_at:.1f} s after the answer"
    assert exit_code in (0, -signal.SIGTERM)
    print(f"\ndrain: answer done {done_at - signalled:.1f} s after SIGTERM; exit {exited_at - done_at:.2f} s later")

    # A new send right after is accepted, and answered.
    await moved.ask("count to 3", client_id="after")
    after = await moved.run_events_until_done()
    assert after[-1]["status"] == "completed"
    await asyncio.gather(moved.close(), on_other.close())


async def test_sigkill_ends_the_answer_interrupted_with_what_the_heartbeat_saved(deployment):
    writer, other = deployment.start_server(server="uvicorn"), deployment.start_server(server="uvicorn")
    session = deployment.sign_up(writer)
    conversation = session.new_conversation()
    on_writer = await LiveTab.open(writer, session, conversation)
    on_other = await LiveTab.open(other, session, conversation)

    await on_writer.ask(QUESTION)
    run_id = (await on_writer.receive_until(lambda f: f.get("type") == "run_started"))[-1]["run_id"]
    await on_other.receive_until(is_token_with("30,"))
    beaten = await eventually(lambda: stored(deployment, run_id)[0][1] or None, message="a heartbeat saved text")
    killed = time.monotonic()
    writer.process.send_signal(signal.SIGKILL)

    ending = await on_other.receive_until(lambda f: f.get("type") == "done")
    ended_in = time.monotonic() - killed
    status, content, _error = stored(deployment, run_id)[0]

    assert ending[-1]["status"] == "interrupted"
    assert status == "interrupted" and content.startswith(beaten)
    assert ended_in <= 30
    print(f"\nkill: interrupted {ended_in:.1f} s after SIGKILL, {len(content)} characters kept")
    await on_other.close()


async def test_a_lost_stream_then_a_crash_keeps_the_text_the_heartbeat_saved(deployment):
    writer, other = deployment.start_server(server="uvicorn"), deployment.start_server(server="uvicorn")
    session = deployment.sign_up(writer)
    conversation = session.new_conversation()
    on_other = await LiveTab.open(other, session, conversation)
    client = redis.Redis.from_url(deployment.env["REDIS_URL"])

    await on_other.ask(QUESTION)  # the process the tab is on writes the answer
    run_id = (await on_other.receive_until(lambda f: f.get("type") == "run_started"))[-1]["run_id"]
    await on_other.close()
    on_writer = await LiveTab.open(writer, session, conversation)
    await on_writer.receive_until(is_token_with("30,"))
    beaten = await eventually(lambda: stored(deployment, run_id)[0][1] or None, message="a heartbeat saved text")
    assert client.delete(f"agentchat:run:{run_id}") == 1  # Redis loses the stream (a failover to a stale replica)
    await on_writer.receive_until(is_token_with("40,"))  # appends go on: a new stream, holding only a tail
    other.process.send_signal(signal.SIGKILL)  # the process writing the answer dies

    ending = await on_writer.receive_until(lambda f: f.get("type") == "done")
    status, content, _error = stored(deployment, run_id)[0]

    assert ending[-1]["status"] == "interrupted"
    assert status == "interrupted" and content.startswith(beaten) and content.startswith("1, 2, 3,")
    await on_writer.close()
