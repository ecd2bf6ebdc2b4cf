"""The API's side of the model choice: POST and PATCH carry `model`, a model not offered is 400
`model_unavailable` (nothing changes), conversations show their model and assistants their models."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from agent_runtime.llm import ModelConfig
from conversations.models import Conversation
from tests.conversations.test_model_choice_assistants import ONE_MODEL, TWO_MODELS
from tests.support.api import AsgiClient
from tests.support.tabs import open_tab

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def two_models(settings):
    settings.AGENT_ASSISTANTS = [TWO_MODELS, ONE_MODEL]
    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url="http://model.invalid/v1", max_retries=0)


async def post_json(api, path, body, method="post"):
    return await getattr(api, method)(path, json.dumps(body), content_type="application/json")


async def test_the_assistants_list_their_models(api):
    listed = (await api.get("/api/assistants")).json()
    assert [(a["id"], a["model"], a["models"]) for a in listed] == [
        ("two-models", "gpt-4o-mini", ["gpt-4o-mini", "gpt-4o"]),
        ("one-model", "solo-model", ["solo-model"]),
    ]


async def test_a_conversation_is_created_with_a_chosen_model_or_the_default(api):
    chosen = await post_json(api, "/api/conversations/", {"assistant": "two-models", "model": "gpt-4o"})
    default = await post_json(api, "/api/conversations/", {"assistant": "two-models"})
    bare = await api.post("/api/conversations/")

    assert chosen.status_code == 201 and chosen.json()["model"] == "gpt-4o"
    assert default.status_code == 201 and default.json()["model"] == "gpt-4o-mini"
    assert bare.status_code == 201 and bare.json()["model"] == "gpt-4o-mini"
    stored = await database_sync_to_async(Conversation.objects.get)(pk=chosen.json()["id"])
    assert stored.model == "gpt-4o"
    detail = (await api.get(f"/api/conversations/{stored.pk}")).json()
    assert detail["model"] == "gpt-4o"
    assert {c["id"]: c["model"] for c in (await api.get("/api/conversations/")).json()}[stored.pk] == "gpt-4o"


@pytest.mark.parametrize("model", ["gpt-3", "", "x" * 5000, 5])
async def test_creating_with_a_model_unavailable_is_400_and_creates_nothing(api, model):
    response = await post_json(api, "/api/conversations/", {"assistant": "one-model", "model": model})

    assert response.status_code == 400
    error = response.json()["error"]
    if isinstance(model, str):
        assert error["code"] == "model_unavailable"
        assert error["message"].endswith("it offers: solo-model.") and len(error["message"]) < 300
    else:  # not a string: the body does not fit its schema
        assert error["code"] == "bad_request"
    assert await database_sync_to_async(Conversation.objects.count)() == 0


async def test_patch_switches_the_model_and_every_open_tab_hears_it(api, alice):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="two-models")
    tab, connected, _ = await open_tab(conversation.pk, alice)
    assert connected and (await tab.receive())["model"] == "gpt-4o-mini"

    response = await post_json(api, f"/api/conversations/{conversation.pk}", {"model": "gpt-4o"}, "patch")

    assert response.status_code == 200
    assert (response.json()["model"], response.json()["title"]) == ("gpt-4o", "")
    assert await tab.receive() == {"type": "model", "model": "gpt-4o"}
    await tab.close()


async def test_patch_renames_and_switches_at_once(api, alice):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="two-models")
    body = {"title": "Plans", "model": "gpt-4o"}
    response = await post_json(api, f"/api/conversations/{conversation.pk}", body, "patch")
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["model"]) == ("Plans", "gpt-4o")


async def test_patch_with_a_model_unavailable_is_400_and_changes_nothing(api, alice):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="two-models")
    body = {"title": "Renamed", "model": "gpt-3"}
    response = await post_json(api, f"/api/conversations/{conversation.pk}", body, "patch")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_unavailable"
    stored = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert (stored.title, stored.model) == ("", "")


async def test_patch_with_neither_title_nor_model_is_400(api, alice):
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice, assistant_id="two-models")
    response = await post_json(api, f"/api/conversations/{conversation.pk}", {}, "patch")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


async def test_the_schema_documents_model(api):
    schema = (await AsgiClient().get("/api/schema")).json()
    components = schema["components"]["schemas"]
    assert "model" in components["ConversationPatchIn"]["properties"]
    assert "model" in components["ConversationOut"]["properties"]
    assert "models" in components["AssistantOut"]["properties"]
