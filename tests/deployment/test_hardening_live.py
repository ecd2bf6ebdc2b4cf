"""Abuse and overload against a real daphne process: hijacking, huge frames, slow tabs, load."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live_tabs import LiveTab
from tests.support.deployments import live_deployment
from tests.support.waits import eventually

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def deployment():
    with live_deployment(tokens_per_second=0, extra_env={"RATE_LIMIT_MESSAGES_PER_MINUTE": "1000"}) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def server(deployment):
    return deployment.start_server()


@pytest.fixture(scope="module")
def alice(deployment, server):
    session = deployment.sign_up(server)
    return session, session.new_conversation()


@pytest.mark.parametrize("origin", ["http://evil.example", "null", None])
async def test_a_socket_with_the_users_cookie_from_another_origin_is_refused(server, alice, origin):
    session, conversation = alice
    headers = {"Cookie": session.cookie_header}
    if origin:
        headers["Origin"] = origin
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url(conversation), additional_headers=headers, open_timeout=5)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:{other_port}", "https://127.0.0.1:{port}", "https://127.0.0.1", "http://localhost:{port}"],
    ids=["another port", "another scheme", "another scheme and port", "another host name"],
)
async def test_a_socket_from_another_port_of_the_same_host_is_refused(server, alice, origin):
    session, conversation = alice
    origin = origin.format(port=server.port, other_port=server.port + 1)
    headers = {"Cookie": session.cookie_header, "Origin": origin}
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url(conversation), additional_headers=headers, open_timeout=5)
    assert refused.value.response.status_code == 403
    async with connect(server.ws_url(conversation), additional_headers={**headers, "Origin": server.http_url}) as tab:
        assert json.loads(await tab.recv())["type"] == "snapshot"  # the site's own origin still opens


async def test_a_frame_over_one_mebibyte_is_refused_without_harm_to_others(server, alice):
    session, conversation = alice
    bystander = await LiveTab.open(server, session, conversation)
    attacker = await LiveTab.open(server, session, conversation)

    await attacker.connection.send("x" * (1024 * 1024 + 1))
    with pytest.raises(ConnectionClosed) as closed:
        await attacker.receive()
    # daphne drops the connection (or closes it with 1009, message too big); either way it is gone.
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009

    await bystander.send({"type": "sync"})
    assert (await bystander.receive())["type"] == "snapshot"
    await bystander.ask("What is 2 + 3?", client_id="after-attack")
    assert (await bystander.run_events_until_done())[-1]["status"] == "completed"
    await bystander.close()


async def largest_rss_until_idle(pid: int) -> int:
    """The server's largest resident memory until it idles: under 50 ms of CPU in half a second.

    Once the run is over, whatever the server is to do for a tab that reads nothing (queue its events,
    buffer them for its socket) keeps it busy; idle, it has done all of it, however slowly a loaded
    machine let it, and its memory shows what that cost.
    """
    process = psutil.Process(pid)
    largest, last_cpu = 0, None

    def idle() -> bool:  # asked every half second
        nonlocal largest, last_cpu
        largest = max(largest, process.memory_info().rss)
        times = process.cpu_times()
        cpu = times.user + times.system
        busy = None if last_cpu is None else cpu - last_cpu
        last_cpu = cpu
        return busy is not None and busy < 0.05

    await eventually(idle, timeout=20, interval=0.5, message="the server idles")
    return largest


async def test_a_tab_that_stops_reading_slows_nobody_and_catches_up(deployment, server):
    session = deployment.sign_up(server)
    conversation = session.new_conversation()
    reader = await LiveTab.open(server, session, conversation)
    sleeper = await LiveTab.open(server, session, conversation)
    sleeper.connection.transport.pause_reading()  # reads nothing: its TCP buffers fill up
    rss_before = psutil.Process(server.process.pid).memory_info().rss

    started = time.monotonic()
    await reader.ask("count to 3000")
    seen = await reader.run_events_until_done()
    reader_took = time.monotonic() - started
    rss_grew = await largest_rss_until_idle(server.process.pid) - rss_before
    sleeper.connection.transport.resume_reading()

    expected = ", ".join(str(n) for n in range(1, 3001)) + "."
    assert seen[-2]["content"] == expected
    assert reader_took < 15
    assert rss_grew < 64 * 1024 * 1024
    caught_up = await sleeper.run_events_until_done()
    if [e["seq"] for e in caught_up] == list(range(1, len(caught_up) + 1)):
        assert "".join(e["text"] for e in caught_up if e["type"] == "token") == expected
    else:  # it missed events while it slept: like the page, it resynchronises from the stored state
        await sleeper.send({"type": "sync"})
        snapshot = await sleeper.receive_until(lambda f: f["type"] == "snapshot")
        assert snapshot[-1]["messages"][-1]["content"] == expected


async def test_load_500_sockets_50_runs_50_users_nobody_sees_another_users_events(deployment, server):
    users = deployment.create_users(50)
    tabs_per_user = 10
    tabs: list[tuple[dict, LiveTab]] = []
    for user in users:
        for _ in range(tabs_per_user):
            headers = {"Cookie": f"sessionid={user['session']}", "Origin": server.http_url}
            connection = await connect(server.ws_url(user["conversation"]), additional_headers=headers, open_timeout=30)
            tab = LiveTab(connection)
            tab.snapshot = await tab.receive()
            tabs.append((user, tab))
    assert len(tabs) == 500

    started = time.monotonic()
    for user, tab in tabs[::tabs_per_user]:
        await tab.ask(f"count to 60 for {user['username']}", client_id=user["username"])
    probe_started = time.monotonic()
    async with httpx.AsyncClient() as client:
        assert (await client.get(server.http_url + "/accounts/login/", timeout=10)).status_code == 200
    page_latency = time.monotonic() - probe_started

    results = await asyncio.wait_for(asyncio.gather(*(tab.run_events_until_done() for _, tab in tabs)), 120)
    elapsed = time.monotonic() - started
    expected = ", ".join(str(n) for n in range(1, 61)) + "."
    run_of = {}
    for (user, _), seen in zip(tabs, results, strict=True):
        assert seen[0]["user_message"]["client_id"] == user["username"]  # never another user's run
        assert len({e["run_id"] for e in seen}) == 1
        run_of.setdefault(user["username"], seen[0]["run_id"])
        assert seen[0]["run_id"] == run_of[user["username"]]
        assert "".join(e["text"] for e in seen if e["type"] == "token") == expected
        assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert len(set(run_of.values())) == 50
    stored = deployment.query(
        "SELECT count(*) FROM conversations_message WHERE role = 'assistant' AND status = 'completed'"
    )
    assert stored[0][0] >= 50
    assert page_latency < 5
    figures = {"sockets": 500, "runs": 50, "seconds": round(elapsed, 2), "page_latency_s": round(page_latency, 3)}
    print(json.dumps(figures))
    await asyncio.gather(*(tab.close() for _, tab in tabs))
