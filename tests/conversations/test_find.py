"""Finding conversations in the pages: "New chat" leaves no empty row behind, search, the sidebar's
search results, "just now", and renaming from the browser with the session cookie."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from api.errors import CSRF_FAILED
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def with_message(owner, title: str, content: str) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title)
    Message.objects.create(conversation=conversation, role="user", content=content)
    return conversation


def listed(response) -> list[int]:
    return [c.pk for c in response.context["conversations"]]


def test_new_chat_twice_opens_the_same_empty_conversation(alice_client, alice):
    first = alice_client.post(reverse("conversation_new"))
    second = alice_client.post(reverse("conversation_new"))

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Conversation.objects.filter(owner=alice).count() == 1


def test_new_chat_starts_another_once_the_empty_one_has_a_message(alice_client, alice):
    alice_client.post(reverse("conversation_new"))
    Message.objects.create(conversation=Conversation.objects.get(owner=alice), role="user", content="hi")

    alice_client.post(reverse("conversation_new"))

    assert Conversation.objects.filter(owner=alice).count() == 2


def test_the_pages_list_no_blank_conversation_but_the_one_open(alice_client, alice):
    used = with_message(alice, "", "What is 1 + 1?")
    blank = Conversation.objects.create(owner=alice)
    other_blank = Conversation.objects.create(owner=alice)

    on_list = alice_client.get(reverse("conversation_list"))
    on_chat = alice_client.get(reverse("conversation_detail", args=[blank.pk]))

    assert listed(on_list) == [used.pk]
    assert set(listed(on_chat)) == {used.pk, blank.pk}
    assert other_blank.pk not in listed(on_chat)


def test_the_list_page_searches_titles_and_messages(alice_client, alice, bob):
    holiday = with_message(alice, "Holiday", "Porto or Lisbon?")
    sums = with_message(alice, "Sums", "What is 1 + 1?")
    with_message(bob, "Holiday", "Lisbon")

    response = alice_client.get(reverse("conversation_list"), {"q": "lisbon HOLIDAY"})

    assert listed(response) == [holiday.pk]
    assert sums.pk not in listed(response)
    assert 'value="lisbon HOLIDAY"' in response.content.decode()


def test_the_sidebar_search_answers_json_with_my_matches_only(alice_client, alice, bob):
    holiday = with_message(alice, "Holiday", "Porto or Lisbon?")
    with_message(alice, "Sums", "What is 1 + 1?")
    with_message(bob, "Lisbon too", "Lisbon")

    response = alice_client.get(reverse("conversation_search"), {"q": "lisbon"})

    assert response.json() == {
        "conversations": [
            {"id": holiday.pk, "title": "Holiday", "url": reverse("conversation_detail", args=[holiday.pk])}
        ]
    }


def test_a_conversation_updated_seconds_ago_says_just_now(alice_client, alice):
    recent = with_message(alice, "Recent", "hi")
    older = with_message(alice, "Older", "hi")
    Conversation.objects.filter(pk=older.pk).update(updated=datetime.now(UTC) - timedelta(minutes=5))

    page = alice_client.get(reverse("conversation_list")).content.decode()

    assert "just now" in page and "0\xa0minutes" not in page and "0 minutes" not in page
    assert "5\xa0minutes ago" in page
    assert recent.pk in listed(alice_client.get(reverse("conversation_list")))


def test_renaming_with_the_session_cookie_needs_the_csrf_token(alice, conversation):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    body = json.dumps({"title": "From the page"})
    url = f"/api/conversations/{conversation.pk}"

    refused = browser.patch(url, body, content_type="application/json")
    browser.get(reverse("conversation_detail", args=[conversation.pk]))
    token = browser.cookies["csrftoken"].value
    renamed = browser.patch(url, body, content_type="application/json", headers={"X-CSRFToken": token})

    assert refused.status_code == 403 and refused.json()["error"]["message"] == CSRF_FAILED
    assert renamed.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_set_by_user) == ("From the page", True)
