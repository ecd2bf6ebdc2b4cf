"""A model chosen per conversation: the assistants' `models` checked at load, the choice stored, shown
in every tab at once, refused when not offered, and used by the next run (the model server hears it)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.exceptions import ImproperlyConfigured

from agent_runtime.assistants import Assistant
from agent_runtime.llm import ModelConfig
from conversations import protocol
from conversations.assistants import (
    MODELS_MAX,
    _models_check,
    assistant_models,
    assistant_payload,
    assistant_registry,
    conversation_model,
    conversation_model_config,
)
from conversations.models import Conversation, Message
from tests.conversations.test_model_choice_assistants import ONE_MODEL, TWO_MODELS, OneModel, TwoModels
from tests.fake_openai import StreamResponse, content_chunks
from tests.support.tabs import open_tab


def assistant(**attributes) -> type[Assistant]:
    return type("Made", (Assistant,), {"id": "made", "name": "Made", **attributes})


@pytest.mark.parametrize(
    "models",
    [
        [],
        "gpt-4o",
        ["gpt-4o", "gpt-4o"],
        ["gpt-4o", ""],
        ["gpt-4o", "   "],
        ["gpt-4o", 4],
        ["x" * 101],
        [f"m{i}" for i in range(MODELS_MAX + 1)],
        None,
    ],
    ids=["empty", "a-string", "twice", "blank", "spaces", "not-a-string", "too-long", "too-many", "none"],
)
def test_bad_models_are_refused_when_the_assistants_load(models):
    with pytest.raises(ImproperlyConfigured, match="`models` must be a list of 1 to 20 distinct"):
        _models_check(assistant(models=models))


def test_a_model_outside_models_is_refused():
    with pytest.raises(ImproperlyConfigured, match="`model` must be one of `models`"):
        _models_check(assistant(model="gpt-4", models=["gpt-4o-mini", "gpt-4o"]))


@pytest.mark.parametrize(
    "attributes",
    [{}, {"model": "m"}, {"models": ["a", "b"]}, {"model": "b", "models": ("a", "b")}, {"models": ["x" * 100]}],
)
def test_good_declarations_load(attributes):
    _models_check(assistant(**attributes))


def test_the_registry_refuses_a_bad_assistant(settings):
    settings.AGENT_ASSISTANTS = ["tests.conversations.test_model_choice.Twice"]
    with pytest.raises(ImproperlyConfigured, match="'twice'"):
        assistant_registry()


class Twice(Assistant):
    id = "twice"
    name = "Twice"
    models = ["a", "a"]


def test_what_each_assistant_offers(settings):
    settings.AGENT_MODEL = ModelConfig(api_key="k", model="deployment-model")
    assert assistant_models(TwoModels) == ["gpt-4o-mini", "gpt-4o"]
    assert assistant_models(OneModel) == ["solo-model"]
    assert assistant_models(assistant()) == ["deployment-model"]
    assert assistant_payload(TwoModels)["models"] == ["gpt-4o-mini", "gpt-4o"]
    assert assistant_payload(TwoModels)["model"] == "gpt-4o-mini"


def test_a_stored_model_no_longer_offered_falls_back_to_the_default(settings):
    settings.AGENT_MODEL = ModelConfig(api_key="k", base_url="http://model.invalid/v1")
    chosen = Conversation(assistant_id="two-models", model="gpt-4o")
    dropped = Conversation(assistant_id="two-models", model="gpt-3")
    blank = Conversation(assistant_id="two-models")
    assert conversation_model(chosen, TwoModels) == "gpt-4o"
    assert conversation_model(dropped, TwoModels) == "gpt-4o-mini"
    assert conversation_model(blank, TwoModels) == "gpt-4o-mini"
    config = conversation_model_config(chosen, TwoModels)
    assert (config.model, config.base_url, config.api_key) == ("gpt-4o", "http://model.invalid/v1", "k")


# --- over the socket ------------------------------------------------------------------------------


@pytest.fixture
def two_models(settings, fake_openai):
    settings.AGENT_ASSISTANTS = [TWO_MODELS, ONE_MODEL]
    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    return fake_openai


async def two_tabs(conversation: Conversation, user) -> tuple:
    opened = []
    for _ in range(2):
        tab, connected, _ = await open_tab(conversation.pk, user)
        assert connected
        tab.snapshot = await tab.receive()
        opened.append(tab)
    return tuple(opened)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_switch_reaches_every_tab_and_the_next_run_uses_it(two_models, alice):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="two-models")
    first, second = await two_tabs(conversation, alice)
    assert first.snapshot["model"] == "gpt-4o-mini"

    await first.send({"type": "set_model", "model": "gpt-4o"})
    for tab in (first, second):
        assert await tab.receive() == {"type": "model", "model": "gpt-4o"}
    stored = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert stored.model == "gpt-4o"

    two_models.enqueue(StreamResponse(content_chunks(["Hello."])))
    await second.ask("Hi")  # the other tab sends: it answers with the model chosen in the first
    seen = await second.run_events_until_done()
    assert seen[0]["type"] == "run_started" and seen[0]["model"] == "gpt-4o"
    assert seen[-1]["status"] == "completed"
    assert two_models.requests[-1]["model"] == "gpt-4o"
    answer = await database_sync_to_async(Message.objects.get)(conversation=conversation, role="assistant")
    assert answer.model == "gpt-4o"

    third, connected, _ = await open_tab(conversation.pk, alice)  # a tab opened later shows the choice
    assert connected
    assert (await third.receive())["model"] == "gpt-4o"
    for tab in (first, second, third):
        await tab.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("model", ["gpt-3", "", None, 4, ["gpt-4o"], "x" * 10_000])
async def test_a_model_unavailable_is_refused_for_that_tab_only(two_models, alice, model):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="two-models")
    first, second = await two_tabs(conversation, alice)

    await first.send({"type": "set_model", "model": model})
    error = await first.receive()
    assert error["type"] == "error" and error["code"] == protocol.MODEL_UNAVAILABLE
    assert "offers: gpt-4o-mini, gpt-4o" in error["message"] and len(error["message"]) < 300
    assert await second.communicator.receive_nothing(timeout=0.2)
    stored = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert stored.model == ""
    for tab in (first, second):
        await tab.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_switch_while_an_answer_streams_applies_to_the_next(two_models, alice):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="two-models")
    (tab, _) = await two_tabs(conversation, alice)
    two_models.enqueue(
        StreamResponse(content_chunks(["one ", "two ", "three."]), delay=0.2),
        StreamResponse(content_chunks(["Again."])),
    )
    await tab.ask("Count", client_id="a")
    await tab.receive_until(lambda f: f.get("type") == "run_started")
    await tab.send({"type": "set_model", "model": "gpt-4o"})
    frames = await tab.receive_until(lambda f: f.get("type") == "done")
    assert {"type": "model", "model": "gpt-4o"} in frames
    await tab.ask("Again", client_id="b")
    second = await tab.receive_until(lambda f: f.get("type") == "run_started")
    assert second[-1]["model"] == "gpt-4o"
    await tab.receive_until(lambda f: f.get("type") == "done")
    assert [r["model"] for r in two_models.requests] == ["gpt-4o-mini", "gpt-4o"]
    models = await database_sync_to_async(
        lambda: list(Message.objects.filter(role="assistant").order_by("pk").values_list("model", flat=True))
    )()
    assert models == ["gpt-4o-mini", "gpt-4o"]
    await tab.close()


@pytest.mark.django_db(transaction=True)
def test_ask_takes_a_model_and_refuses_one_not_offered(settings, alice):
    from django.core.management import CommandError, call_command

    settings.AGENT_ASSISTANTS = [TWO_MODELS]
    with pytest.raises(CommandError, match=r"model_unavailable: .*it offers: gpt-4o-mini, gpt-4o"):
        call_command("ask", "What is 1 + 1?", "--user", "alice", "--model", "gpt-3")
    assert not Message.objects.exists()
