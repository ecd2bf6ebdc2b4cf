"""A search is bounded (`SEARCH_MAX_WORDS`, `SEARCH_MAX_CHARS`): past them the list page and the
sidebar say so (400) and the History assistant's tool fails with the same text for the model, before any query
is built. The API's answer is in tests/api/test_search_bounds.py."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.urls import reverse
from langchain_core.tools import ToolException

from conversations.actions import BAD_REQUEST, SEARCH_TOO_LONG, Refused, search_check
from conversations.builtin_assistants import HistoryAssistant
from conversations.models import Conversation, Message
from conversations.selectors import conversation_list_for_page, conversation_list_recent
from tests.support.runs import assert_well_formed
from tests.support.tabs import open_tab

pytestmark = pytest.mark.django_db


def too_long() -> str:
    return SEARCH_TOO_LONG.format(words=settings.SEARCH_MAX_WORDS, chars=settings.SEARCH_MAX_CHARS)


def words(count: int) -> str:
    return " ".join(f"w{n}" for n in range(count))


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def holiday(alice) -> Conversation:
    conversation = Conversation.objects.create(owner=alice, title="Holiday")
    Message.objects.create(conversation=conversation, role="user", content="Porto or Lisbon?")
    return conversation


def test_the_bounds_are_the_settings_and_the_message_names_them():
    assert (settings.SEARCH_MAX_WORDS, settings.SEARCH_MAX_CHARS) == (12, 200)
    assert "12 words" in too_long() and "200 characters" in too_long()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", []),
        ("  Lisbon   holiday ", ["Lisbon", "holiday"]),
        (words(12), words(12).split()),
        ("x" * 200, ["x" * 200]),
        (" " * 500 + "lisbon" + " " * 500, ["lisbon"]),  # surrounding blanks do not count
    ],
)
def test_a_search_within_the_bounds_is_its_words(query, expected):
    assert search_check(query=query) == expected


@pytest.mark.parametrize("query", [words(13), "x" * 201, words(2000), "x" * 1_000_000])
def test_a_search_past_the_bounds_is_refused_bad_request(query):
    with pytest.raises(Refused) as refused:
        search_check(query=query)
    assert (refused.value.code, refused.value.message) == (BAD_REQUEST, too_long())


def test_the_bounds_follow_the_settings(settings):
    settings.SEARCH_MAX_WORDS, settings.SEARCH_MAX_CHARS = 2, 10

    assert search_check(query="one two") == ["one", "two"]
    with pytest.raises(Refused) as refused:
        search_check(query="one two three")
    assert refused.value.message == SEARCH_TOO_LONG.format(words=2, chars=10)


def test_the_selectors_refuse_before_building_a_query(alice, django_assert_num_queries):
    with django_assert_num_queries(0):
        started = time.perf_counter()
        for search in (
            lambda: conversation_list_for_page(user=alice, query=words(2000)),
            lambda: conversation_list_recent(user=alice, limit=100, query=words(2000)),
        ):
            with pytest.raises(Refused):
                search()
        took = time.perf_counter() - started
    assert took < 0.05  # building the filters of 2,000 words took seconds


def test_the_list_page_says_a_search_is_too_long_instead_of_results(alice_client, holiday):
    response = alice_client.get(reverse("conversation_list"), {"q": f"lisbon {words(2000)}"})

    page = response.content.decode()
    assert response.status_code == 400
    assert 'data-testid="search-refused"' in page and too_long() in page
    assert list(response.context["conversations"]) == []
    assert 'data-testid="list-search"' in page  # the search box is there to shorten it


def test_the_list_page_searches_as_before_within_the_bounds(alice_client, holiday):
    response = alice_client.get(reverse("conversation_list"), {"q": "lisbon holiday"})

    assert response.status_code == 200
    assert [c.pk for c in response.context["conversations"]] == [holiday.pk]
    assert 'data-testid="search-refused"' not in response.content.decode()


def test_the_sidebar_search_answers_400_bad_request_with_the_message(alice_client, holiday):
    response = alice_client.get(reverse("conversation_search"), {"q": words(13), "open": str(holiday.pk)})

    assert response.status_code == 400
    assert response.json() == {"error": {"code": BAD_REQUEST, "message": too_long()}}


def test_the_chat_page_has_a_place_for_the_sidebars_refusal(alice_client, holiday):
    page = alice_client.get(reverse("conversation_detail", args=[holiday.pk])).content.decode()

    assert 'data-testid="sidebar-search-refused"' in page and "data-side-refused" in page


def test_the_history_tool_fails_with_the_message_for_the_model(alice, holiday, django_assert_num_queries):
    history = HistoryAssistant(user=alice)

    with django_assert_num_queries(0), pytest.raises(ToolException) as failed:
        history.search_my_conversations(query=words(2000))

    assert str(failed.value) == too_long()
    assert "Holiday" in history.search_my_conversations(query="lisbon")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_history_assistant_reads_the_refusal_as_a_tool_error(settings, alice):
    settings.AGENT_ASSISTANTS = ["conversations.builtin_assistants.HistoryAssistant"]
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    tab, connected, _ = await open_tab(conversation.pk, alice)
    assert connected
    await tab.receive()

    await tab.ask(f"What did I ask about {words(13)}?")
    seen = await tab.run_events_until_done()
    await tab.close()

    assert_well_formed(seen)
    result = next(e for e in seen if e["type"] == "tool_result")
    assert (result["name"], result["error"]) == ("search_my_conversations", too_long())
    assert seen[-1]["status"] == "completed"
