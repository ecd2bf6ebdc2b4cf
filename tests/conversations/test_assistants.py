"""Assistants a deploying team declares: its tools run as the asking user, its instructions and model
reach the model, its tool steps stream like the arithmetic ones, a removed one is refused clearly."""

from __future__ import annotations

import json
import re
import threading

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from agent_runtime.errors import TOOL_FAILED
from agent_runtime.llm import ModelConfig
from conversations import protocol
from conversations.assistants import assistant_registry
from conversations.builtin_assistants import HistoryAssistant
from conversations.models import Conversation, Message
from conversations.sending import ASSISTANT_UNAVAILABLE
from tests.assistants import example
from tests.assistants.example import SHOP_INSTRUCTIONS
from tests.fake_openai import StreamResponse, content_chunks, tool_calls_chunks
from tests.support.answers import wait_until_answered
from tests.support.api import TokenClient, sse_reader
from tests.support.runs import assert_well_formed
from tests.support.tabs import open_tab

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = ["tests.assistants.example.Shop", "tests.assistants.example.Counter"]


@pytest.fixture
def shop(settings, fake_openai):
    settings.AGENT_ASSISTANTS = [*EXAMPLES, "agent_runtime.assistants.ArithmeticAssistant"]
    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    return fake_openai


def notes_then_answer(fake_openai, call_id: str) -> None:
    fake_openai.enqueue(
        StreamResponse(tool_calls_chunks([(call_id, "my_notes", ['{"containing": ', '"secret"}'])])),
        StreamResponse(content_chunks(["Here ", "they are."])),
    )


async def ask_in_new_conversation(user, text: str) -> list[dict]:
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=user)
    tab, connected, _ = await open_tab(conversation.pk, user)
    assert connected
    await tab.receive()
    await tab.ask(text)
    seen = await tab.run_events_until_done()
    await tab.close()
    return seen


@pytest.mark.asyncio
async def test_the_first_listed_assistant_answers_a_new_conversation(shop, alice):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    assert conversation.assistant_id == "shop"
    assert list(assistant_registry()) == ["shop", "counter", "arithmetic"]


@pytest.mark.asyncio
async def test_a_sync_orm_tool_runs_as_the_asking_user_each_sees_only_their_own(shop, alice, bob):
    create = database_sync_to_async(Conversation.objects.create)
    await create(owner=alice, title="alice secret plans")
    await create(owner=bob, title="bob secret diary")

    notes_then_answer(shop, "c1")
    seen_by_alice = await ask_in_new_conversation(alice, "What are my notes?")
    notes_then_answer(shop, "c2")
    seen_by_bob = await ask_in_new_conversation(bob, "What are my notes?")

    alice_result = next(e for e in seen_by_alice if e["type"] == "tool_result")
    bob_result = next(e for e in seen_by_bob if e["type"] == "tool_result")
    assert alice_result["output"] == "alice secret plans"
    assert bob_result["output"] == "bob secret diary"
    assert seen_by_alice[-1]["status"] == seen_by_bob[-1]["status"] == "completed"


@pytest.mark.asyncio
async def test_the_model_request_carries_the_assistants_instructions_first_and_its_model(shop, alice):
    notes_then_answer(shop, "c1")
    await ask_in_new_conversation(alice, "What are my notes?")

    request = shop.requests[0]
    assert request["model"] == "shop-model-1"
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][0]["content"].startswith(SHOP_INSTRUCTIONS)
    offered = {t["function"]["name"] for t in request["tools"]}
    assert offered == {"my_notes", "shout", "explode", "final_answer"}
    schema = next(t["function"] for t in request["tools"] if t["function"]["name"] == "shout")
    assert set(schema["parameters"]["properties"]) == {"text", "times"}  # never `self`, never the user


@pytest.mark.asyncio
async def test_an_async_tools_steps_reach_two_tabs_and_the_sse_stream(shop, alice, alice_token):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    shop.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "shout", ['{"text": "hi", ', '"times": 2}'])])),
        StreamResponse(content_chunks(["Shouted."])),
    )
    tabs = []
    for _ in range(2):
        tab, connected, _ = await open_tab(conversation.pk, alice)
        assert connected
        await tab.receive()
        tabs.append(tab)
    stream = await sse_reader(await TokenClient(alice_token).get(f"/api/conversations/{conversation.pk}/stream"))

    await tabs[0].ask("Shout hi twice")
    seen = [await tab.run_events_until_done() for tab in tabs]
    over_http = [e.data for e in await stream.to_end()]

    assert seen[0] == seen[1] == over_http
    assert_well_formed(seen[0])
    kinds = [e["type"] for e in seen[0]]
    assert kinds[:3] == ["run_started", "tool_start", "tool_args"]
    result = next(e for e in seen[0] if e["type"] == "tool_result")
    assert (result["name"], result["output"]) == ("shout", "HI HI")
    _user, answer = await wait_until_answered(conversation)
    assert answer.tool_steps == [
        {"call_id": "c1", "name": "shout", "args": {"text": "hi", "times": 2}, "output": "HI HI"}
    ]
    assert answer.model == "shop-model-1"
    for tab in tabs:
        await tab.close()


@pytest.mark.asyncio
async def test_a_tool_that_raises_becomes_a_generic_tool_error_and_the_detail_goes_to_the_log(shop, alice, caplog):
    shop.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "explode", ["{}"])])),
        StreamResponse(content_chunks(["It failed."])),
    )
    seen = await ask_in_new_conversation(alice, "Explode")

    result = next(e for e in seen if e["type"] == "tool_result")
    error_id = re.fullmatch(re.escape(TOOL_FAILED).replace(r"\{error_id\}", "([0-9a-f]{12})"), result["error"])[1]
    assert seen[-1]["status"] == "completed"
    follow_up = json.dumps(shop.requests[1]["messages"])
    assert f"Error: {result['error']}" in follow_up
    answer = await database_sync_to_async(Message.objects.get)(run_id=seen[0]["run_id"], role="assistant")
    assert answer.tool_steps[0]["error"] == result["error"]
    # The tabs, the model and storage never see the exception's text; the log has it, its secret redacted.
    for seen_by in (json.dumps(seen), follow_up, json.dumps(answer.tool_steps)):
        assert "warehouse" not in seen_by and "SECRET" not in seen_by
    logged = [r.getMessage() for r in caplog.records if error_id in r.getMessage()]
    assert len(logged) == 1
    assert "the warehouse is on fire for url 'https://api.example.invalid/v1/orders?[redacted]'" in logged[0]
    assert "SECRET" not in caplog.text


@pytest.mark.asyncio
async def test_a_blocked_sync_tool_neither_outlives_the_deadline_nor_holds_up_storing_or_snapshots(
    shop, alice, bob, settings, monkeypatch
):
    released = threading.Event()
    monkeypatch.setattr(example, "sleep", lambda _seconds: released.wait(60))
    settings.AGENT_ASSISTANTS = ["tests.assistants.example.Upstream"]
    settings.AGENT_RUN_TIMEOUT = 1
    shop.enqueue(StreamResponse(tool_calls_chunks([("c1", "look_up", ['{"seconds": 30}'])])))
    try:
        seen = await ask_in_new_conversation(alice, "Look it up")
        # Meanwhile the tool's thread is still blocked; another user's socket is served at once.
        conversation = await database_sync_to_async(Conversation.objects.create)(owner=bob)
        tab, connected, _ = await open_tab(conversation.pk, bob)
        snapshot = await tab.receive()
        await tab.close()
    finally:
        released.set()

    assert [e["type"] for e in seen][-2:] == ["error", "done"]
    assert seen[-2]["code"] == "timeout"
    answer = await database_sync_to_async(Message.objects.get)(run_id=seen[0]["run_id"], role="assistant")
    assert answer.status == "error"
    assert connected and snapshot["type"] == "snapshot"


@pytest.mark.asyncio
async def test_a_conversation_whose_assistant_was_removed_stays_readable_and_refuses_sends(shop, alice, settings):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, title="Old chat")
    settings.AGENT_ASSISTANTS = ["agent_runtime.assistants.ArithmeticAssistant"]

    tab, connected, _ = await open_tab(conversation.pk, alice)
    assert connected
    assert (await tab.receive())["type"] == "snapshot"
    await tab.ask("Hello?", client_id="x1")
    error = (await tab.receive_until(lambda f: f["type"] == "error"))[-1]

    assert error["code"] == protocol.ASSISTANT_UNAVAILABLE
    assert error["message"] == ASSISTANT_UNAVAILABLE.format(assistant_id="shop")
    assert shop.requests == []
    await tab.close()


@pytest.mark.asyncio
async def test_an_mcp_servers_tool_is_called_end_to_end(shop, alice):
    shop.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "count_words", ['{"text": "one two three"}'])])),
        StreamResponse(content_chunks(["Three words."])),
    )
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="counter")
    tab, connected, _ = await open_tab(conversation.pk, alice)
    assert connected
    await tab.receive()

    await tab.ask("How many words in 'one two three'?")
    seen = await tab.run_events_until_done()

    result = next(e for e in seen if e["type"] == "tool_result")
    assert (result["name"], result["output"]) == ("count_words", "3")
    assert seen[-1]["status"] == "completed"
    assert {t["function"]["name"] for t in shop.requests[0]["tools"]} == {"count_words", "final_answer"}
    await tab.close()


@pytest.mark.asyncio
async def test_the_history_assistant_finds_the_users_own_conversations_offline(settings, alice, bob):
    settings.AGENT_ASSISTANTS = ["conversations.builtin_assistants.HistoryAssistant"]
    create = database_sync_to_async(Conversation.objects.create)
    await create(owner=alice, title="Pancake recipe")
    await create(owner=alice, title="Waffles")
    await create(owner=bob, title="Bob's pancake secrets")

    seen = await ask_in_new_conversation(alice, "What did I ask about pancake last week?")

    assert_well_formed(seen)
    call = next(e for e in seen if e["type"] == "tool_start")
    assert call["name"] == "search_my_conversations"
    result = next(e for e in seen if e["type"] == "tool_result")
    assert "Pancake recipe" in result["output"]
    assert "Waffles" not in result["output"] and "Bob" not in result["output"]
    assert seen[-1]["status"] == "completed"
    assert "Pancake recipe" in seen[-2]["content"]
    assert HistoryAssistant.tool_methods().keys() == {"search_my_conversations", "read_my_conversation"}


@pytest.mark.asyncio
async def test_the_api_lists_assistants_and_creates_a_conversation_with_one(alice_token):
    client = TokenClient(alice_token)

    listed = (await client.get("/api/assistants")).json()
    made = await client.post("/api/conversations/", {"assistant": "history"}, content_type="application/json")
    unknown = await client.post("/api/conversations/", {"assistant": "nope"}, content_type="application/json")

    assert [a["id"] for a in listed] == ["arithmetic", "history"]
    assert listed[0] == {
        "id": "arithmetic",
        "name": "Arithmetic",
        "description": listed[0]["description"],
        "model": "offline-demo",
        "models": ["gpt-4o-mini"],  # what a conversation may choose; the offline model answers for each
    }
    assert made.status_code == 201 and made.json()["assistant"] == "history"
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "bad_request"


def test_the_pages_offer_a_picker_and_the_chat_says_which_assistant_answers(alice):
    browser = Client()
    browser.force_login(alice)

    listing = browser.get("/").content.decode()
    made = browser.post("/conversations/new/", {"assistant": "history"})
    chat = browser.get(made["Location"]).content.decode()

    assert 'data-testid="assistant-picker"' in listing and '<option value="history"' in listing
    assert Conversation.objects.get().assistant_id == "history"
    assert 'data-testid="assistant-badge"' in chat and ">History</span>" in chat
    assert "What did I ask about pancakes last week?" in chat  # the assistant's own examples


def test_with_one_assistant_there_is_no_picker(alice, settings):
    settings.AGENT_ASSISTANTS = ["agent_runtime.assistants.ArithmeticAssistant"]
    browser = Client()
    browser.force_login(alice)

    assert 'data-testid="assistant-picker"' not in browser.get("/").content.decode()


@pytest.mark.parametrize(
    "paths",
    [
        ["tests.assistants.example.Shop", "tests.assistants.example.Shop"],
        ["tests.assistants.example.SHOP_INSTRUCTIONS"],
    ],
)
def test_a_bad_assistants_setting_fails_the_system_check(settings, paths):
    from conversations.apps import check_assistants

    settings.AGENT_ASSISTANTS = paths

    assert [error.id for error in check_assistants()] == ["conversations.E001"]
