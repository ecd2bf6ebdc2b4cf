"""A slow sync tool against a real one-process deployment: nobody else waits for it, and it is given up on."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runtime.errors import TOOL_TIMED_OUT
from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks, tool_calls_chunks
from tests.live_tabs import LiveTab
from tests.support.deployments import live_deployment

pytestmark = pytest.mark.asyncio

TOOL_SLEEPS = 30
TOOL_TIMEOUT = 12


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(fake):
    with live_deployment(
        extra_env={
            "AGENT_ASSISTANTS": "tests.assistants.example.Upstream",
            "AGENT_TOOL_TIMEOUT": str(TOOL_TIMEOUT),
            "OPENAI_API_KEY": "test",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_MAX_RETRIES": "0",
        },
    ) as deployment:
        yield deployment


async def test_a_tool_sleeping_thirty_seconds_holds_up_no_one_and_is_given_up_on(deployment, fake):
    server = deployment.start_server()
    alice, bob = deployment.sign_up(server), deployment.sign_up(server)
    alices, bobs = alice.new_conversation(), bob.new_conversation()
    fake.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "look_up", [f'{{"seconds": {TOOL_SLEEPS}}}'])])),
        StreamResponse(content_chunks(["Hello ", "Bob."])),  # Bob's, asked while Alice's tool sleeps
        StreamResponse(content_chunks(["The upstream ", "service did not answer."])),
    )
    alice_tab = await LiveTab.open(server, alice, alices)
    await alice_tab.ask("Look up my order")
    await alice_tab.receive_until(lambda f: f.get("type") == "tool_start")
    await asyncio.sleep(0.5)  # the tool has started: its thread sleeps

    # Another user, on the same process: the socket opens (snapshot) and the send starts, each within 1 s.
    opened_at = time.monotonic()
    bob_tab = await LiveTab.open(server, bob, bobs)
    connected_in = time.monotonic() - opened_at
    sent_at = time.monotonic()
    await bob_tab.ask("Hello")
    await bob_tab.receive_until(lambda f: f.get("type") == "run_started")
    started_in = time.monotonic() - sent_at
    bob_seen = await bob_tab.run_events_until_done()
    bob_done_at = time.monotonic()

    assert connected_in < 1.0
    assert started_in < 1.0
    assert bob_seen[-1]["status"] == "completed"
    # Alice's tool is still sleeping: her run has no tool result yet.
    assert not any(f.get("type") == "tool_result" for f in alice_tab.frames)

    alice_seen = await alice_tab.run_events_until_done()
    result = next(e for e in alice_seen if e["type"] == "tool_result")
    given_up_at = time.monotonic()
    assert result["error"] == TOOL_TIMED_OUT.format(seconds=TOOL_TIMEOUT)
    assert alice_seen[-1]["status"] == "completed"
    assert given_up_at - opened_at < TOOL_SLEEPS  # the answer did not wait for the tool's thread
    assert bob_done_at < given_up_at
    rows = deployment.query(
        "SELECT status, content FROM conversations_message WHERE conversation_id = %s AND role = 'assistant'", alices
    )
    assert rows == [("completed", "The upstream service did not answer.")]
    await asyncio.gather(alice_tab.close(), bob_tab.close())
