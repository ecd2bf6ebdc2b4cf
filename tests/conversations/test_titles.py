"""Titles: made by the model from the first exchange when a real model answers, never over a name the
owner chose, and every new title shown live in the open tabs."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from agent_runtime.llm import ModelConfig
from conversations import runs
from conversations.models import Conversation
from conversations.titles import TITLE_INSTRUCTIONS, title_clean, title_plain
from tests.fake_openai import ErrorResponse, StreamResponse, content_chunks
from tests.support.waits import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def titled(settings, fake_openai):
    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    settings.AGENT_MODEL_TITLES = True
    return fake_openai


async def stored_title(conversation: Conversation) -> str:
    return (await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)).title


async def title_frame(tab) -> dict:
    frames = await tab.receive_until(lambda f: f["type"] == "title")
    return frames[-1]


def title_requests(fake) -> list[dict]:
    return [r for r in fake.requests if r["messages"][0]["content"] == TITLE_INSTRUCTIONS]


def titling(conversation: Conversation) -> bool:
    """Whether the model is being asked for the conversation's title (in the background, after `done`)."""
    name = f"title-{conversation.pk}"
    return any(task.get_name() == name and not task.done() for task in asyncio.all_tasks())


async def run_and_title_over(conversation: Conversation) -> None:
    """Wait until the conversation's run has let go and any title it asked the model for is answered.

    A run asks for a title, if it does, right after its `done` and before it lets go: once both are
    over, every title request it was to make has been made and answered, and nothing is left to wait
    for before saying that none was made, or that the title did not change.
    """
    await eventually(
        lambda: runs.active_run_get(conversation.pk) is None and not titling(conversation),
        message="the run and its title request are over",
    )


async def test_the_model_names_the_conversation_after_its_first_answer_and_the_tabs_see_it(titled, tabs, conversation):
    first, second = await tabs(), await tabs()
    titled.enqueue(
        StreamResponse(content_chunks(["Paris is the capital."])), StreamResponse(content_chunks(['"French capital."']))
    )

    await first.ask("What is the capital of France, and why?")
    await first.run_events_until_done()

    for tab in (first, second):  # named at once by the question, then by the model
        await tab.receive_until(lambda f: f["type"] == "title" and f["title"] == "French capital")
        titles = [f["title"] for f in tab.frames if f["type"] == "title"]
        assert titles == ["What is the capital of France, and why?", "French capital"]
    assert await stored_title(conversation) == "French capital"
    (request,) = title_requests(titled)
    assert "What is the capital of France, and why?" in request["messages"][1]["content"]
    assert "Paris is the capital." in request["messages"][1]["content"]
    assert "tools" not in request  # a plain request: no tools offered for a title

    # A second exchange does not rename it.
    titled.enqueue(StreamResponse(content_chunks(["Lyon."])))
    await first.ask("And the second city?", client_id="c2")
    await first.run_events_until_done()
    await run_and_title_over(conversation)
    assert len(title_requests(titled)) == 1


async def test_a_name_the_owner_chose_is_kept(titled, tabs, conversation, api):
    tab = await tabs()
    renamed = await api.patch(
        f"/api/conversations/{conversation.pk}", {"title": "Trip notes"}, content_type="application/json"
    )
    assert renamed.status_code == 200
    assert (await title_frame(tab))["title"] == "Trip notes"  # a rename reaches the open tabs too
    titled.enqueue(StreamResponse(content_chunks(["Paris."])))

    await tab.ask("Capital of France?")
    await tab.run_events_until_done()
    await run_and_title_over(conversation)

    assert title_requests(titled) == []
    assert await stored_title(conversation) == "Trip notes"


async def test_when_the_model_cannot_title_the_text_title_stays_and_the_answer_is_unharmed(titled, tabs, conversation):
    tab = await tabs()
    titled.enqueue(StreamResponse(content_chunks(["Paris."])), ErrorResponse(status=500))

    await tab.ask("Capital of France?")
    events = await tab.run_events_until_done()
    await run_and_title_over(conversation)  # the model was asked, and answered with an error

    assert events[-1]["status"] == "completed"
    assert len(title_requests(titled)) == 1
    assert await stored_title(conversation) == "Capital of France?"


async def test_the_offline_model_makes_no_title_request(settings, tabs, conversation):
    settings.AGENT_MODEL_TITLES = True
    tab = await tabs()
    await tab.ask("What is 2 + 2?")
    await tab.run_events_until_done()
    await run_and_title_over(conversation)
    assert await stored_title(conversation) == "What is 2 + 2?"


@pytest.mark.parametrize(
    ("reply", "title"),
    [
        ('"French capital."', "French capital"),
        ("Title: Trip to Rome\nMore text", "Trip to Rome"),
        ("**Bold title**", "Bold title"),
        ("**Bold** title", "Bold title"),
        ("Here is **bold** text", "Here is bold text"),
        ("**Title:** Trip to Rome", "Trip to Rome"),
        ('**"Trip to Rome"**', "Trip to Rome"),
        ("**Paris.**", "Paris"),
        ("# Trip to Rome", "Trip to Rome"),
        ("[Rome](https://example.com) trip", "Rome trip"),
        ("Using `asyncio.gather`", "Using asyncio.gather"),
        ("C# basics", "C# basics"),
        ("**Unclosed title", "Unclosed title"),
        ("\n\n  spaced   out  \n", "spaced out"),
        ("x" * 100, "x" * 59 + "…"),
        ("nul\x00byte", "nulbyte"),
        ("", ""),
        (None, ""),
        ("...", ""),
    ],
)
async def test_title_clean(reply, title):
    assert title_clean(reply) == title


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("snake_case names and 2 * 3", "snake_case names and 2 * 3"),  # plain text stays as it is
        ("What does __init__ do?", "What does __init__ do?"),  # a name, though CommonMark makes it bold
        ("C# and F#, 100% sure?", "C# and F#, 100% sure?"),
        ("Here is **bold** and __strong text__", "Here is bold and strong text"),  # `__word__` reads as a name
        ("*one* _two_ ~~three~~", "one two three"),
        ("Call `print(x)` now", "Call print(x) now"),
        ("See [the docs](https://example.com/a_b) please", "See the docs please"),
        ("![a *cat*](cat.png) photo", "a cat photo"),
        ("# Heading\n## Sub", "Heading Sub"),
        ("> quoted\n- item\n2. second", "quoted item second"),
        ("<b>Hi</b> <i>there</i>", "<b>Hi</b> <i>there</i>"),  # the page shows HTML as text: so does the title
        ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
        ("```python\nprint(1)\n```", "print(1)"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "a b 1 2"),
        ("line\nbreak   spaced", "line break spaced"),
        ("---", ""),
        ("", ""),
    ],
)
async def test_title_plain(text, plain):
    assert title_plain(text) == plain


async def test_a_model_title_in_markdown_is_stored_as_plain_text(titled, tabs, conversation):
    tab = await tabs()
    titled.enqueue(
        StreamResponse(content_chunks(["Paris."])),
        StreamResponse(content_chunks(["**French** `capital` [facts](https://example.com)"])),
    )

    await tab.ask("Capital of France?")
    await tab.run_events_until_done()

    await tab.receive_until(lambda f: f["type"] == "title" and f["title"] == "French capital facts")
    assert await stored_title(conversation) == "French capital facts"


async def test_a_first_question_in_markdown_titles_the_conversation_in_plain_text(settings, tabs, conversation):
    tab = await tabs()
    await tab.ask("Why is **snake_case** used in `my_module`?")
    await tab.run_events_until_done()
    await run_and_title_over(conversation)
    assert await stored_title(conversation) == "Why is snake_case used in my_module?"


async def test_a_name_the_owner_types_is_stored_as_typed(api, conversation):
    renamed = await api.patch(
        f"/api/conversations/{conversation.pk}",
        {"title": "  **Bold** `code` # notes  "},
        content_type="application/json",
    )
    assert renamed.status_code == 200
    assert await stored_title(conversation) == "**Bold** `code` # notes"  # only trimmed
