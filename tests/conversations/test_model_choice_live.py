"""The model choice live: the product's server, started against the tests' OpenAI-compatible server with
an assistant offering two models; a switch over the socket reaches the model server's request, and the
answer stores the model that wrote it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conversations.test_model_choice_assistants import TWO_MODELS
from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks
from tests.live_server import Deployment
from tests.live_tabs import LiveTab
from tests.support.deployments import live_deployment

pytestmark = [pytest.mark.live, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(fake: FakeOpenAI) -> Iterator[Deployment]:
    env = {"AGENT_ASSISTANTS": TWO_MODELS, "OPENAI_API_KEY": "test", "OPENAI_BASE_URL": fake.base_url}
    with live_deployment(extra_env={**env, "OPENAI_MAX_RETRIES": "0"}) as deployment:
        yield deployment


async def test_a_switch_over_the_socket_reaches_the_model_servers_request(fake: FakeOpenAI, deployment: Deployment):
    server = deployment.start_server()
    session = deployment.sign_up(server)
    conversation_id = session.new_conversation()
    fake.enqueue(StreamResponse(content_chunks(["Mini."])), StreamResponse(content_chunks(["Big."])))
    tab = await LiveTab.open(server, session, conversation_id)
    other = await LiveTab.open(server, session, conversation_id)

    await tab.ask("First", client_id="one")
    await tab.run_events_until_done()
    await other.run_events_until_done()  # the other tab watched that answer too
    await tab.send({"type": "set_model", "model": "gpt-4o"})
    await other.receive_until(lambda f: f == {"type": "model", "model": "gpt-4o"})
    await other.ask("Second", client_id="two")
    seen = await other.run_events_until_done()

    assert seen[0]["model"] == "gpt-4o" and seen[-1]["status"] == "completed"
    assert [r["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    stored = deployment.query(
        "SELECT model FROM conversations_message WHERE conversation_id = %s AND role = 'assistant' ORDER BY id",
        conversation_id,
    )
    assert stored == [("gpt-4o-mini",), ("gpt-4o",)]
    await tab.send({"type": "set_model", "model": "gpt-5"})
    refused = await tab.receive_until(lambda f: f.get("type") == "error")
    assert refused[-1]["code"] == "model_unavailable"
    await tab.close()
    await other.close()
