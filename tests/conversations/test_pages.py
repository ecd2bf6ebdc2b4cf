"""Pages and admin: login required, ownership, create and delete, review by model permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from conversations.models import Conversation, Message
from tests.messages import message_append
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def transcript(conversation):
    message_append(conversation, role="user", content="What is 10 + 10?", client_id="c1")
    message_append(
        conversation,
        role="assistant",
        content="10 + 10 = 20.",
        tool_steps=[{"call_id": "call_1", "name": "add", "args": {"x": 10, "y": 10}, "output": 20}],
        usage={"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
        model="offline-demo",
    )
    conversation.title = "What is 10 + 10?"
    conversation.save()
    return conversation


def test_pages_require_login(client, conversation):
    for url in [reverse("conversation_list"), reverse("conversation_detail", args=[conversation.pk])]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_sign_up_logs_in_and_lands_on_the_list(client, transactional_db):
    response = client.post(
        reverse("signup"),
        {"username": "carol", "password1": "a-long-test-password", "password2": "a-long-test-password"},
    )
    assert response.status_code == 302
    assert client.get(reverse("conversation_list")).status_code == 200


def test_sign_up_with_mismatched_passwords_shows_the_form_again(client, transactional_db):
    response = client.post(reverse("signup"), {"username": "carol", "password1": "a-long-pass-1", "password2": "x"})
    assert response.status_code == 200
    assert response.context["form"].errors


def test_the_list_shows_only_my_conversations_newest_first(alice_client, alice, transcript):
    bob = make_user("bob")
    Conversation.objects.create(owner=bob, title="Bob's secret")
    newer = Conversation.objects.create(owner=alice, title="Newer one")

    response = alice_client.get(reverse("conversation_list"))
    assert [c.pk for c in response.context["conversations"]] == [newer.pk, transcript.pk]
    assert b"Bob&#x27;s secret" not in response.content and b"Bob's secret" not in response.content


def test_new_conversation_opens_the_chat_page(alice_client, alice):
    response = alice_client.post(reverse("conversation_new"))
    conversation = Conversation.objects.get(owner=alice)
    assert response.url == reverse("conversation_detail", args=[conversation.pk])
    page = alice_client.get(response.url)
    assert page.status_code == 200
    assert page.context["chat_config"]["wsPath"] == f"/ws/conversations/{conversation.pk}/"
    assert page.context["model_name"] == "offline-demo"


def test_another_users_conversation_is_not_found(client, transcript):
    client.force_login(make_user("bob"))
    assert client.get(reverse("conversation_detail", args=[transcript.pk])).status_code == 404
    assert client.post(reverse("conversation_delete", args=[transcript.pk])).status_code == 404
    assert Conversation.objects.filter(pk=transcript.pk).exists()


def test_delete_removes_my_conversation_and_its_messages(alice_client, transcript):
    response = alice_client.post(reverse("conversation_delete", args=[transcript.pk]))
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=transcript.pk).exists()
    assert not Message.objects.filter(conversation_id=transcript.pk).exists()


def test_delete_needs_post(alice_client, transcript):
    assert alice_client.get(reverse("conversation_delete", args=[transcript.pk])).status_code == 405


def make_staff(username: str, *codenames: str) -> User:
    staff = make_user(username, is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return staff


def test_staff_review_transcripts_read_only_in_the_admin(client, transcript):
    client.force_login(make_staff("staff", "view_conversation", "view_message"))
    listing = client.get(reverse("admin:conversations_conversation_changelist"))
    assert listing.status_code == 200
    assert b"What is 10 + 10?" in listing.content
    assert b"alice" in listing.content

    page = client.get(reverse("admin:conversations_conversation_change", args=[transcript.pk]))
    assert page.status_code == 200
    assert b"10 + 10 = 20." in page.content
    assert b"<b>add</b>" in page.content
    assert b'name="_save"' not in page.content

    found = client.get(reverse("admin:conversations_conversation_changelist"), {"q": "10 + 10 = 20"})
    assert found.context["cl"].result_count == 1
    filtered = client.get(reverse("admin:conversations_conversation_changelist"), {"last_status": "error"})
    assert filtered.context["cl"].result_count == 0

    attempt = client.post(reverse("admin:conversations_conversation_change", args=[transcript.pk]), {"title": "x"})
    assert attempt.status_code == 403


def test_non_staff_are_refused_by_the_admin(alice_client, transcript):
    response = alice_client.get(reverse("admin:conversations_conversation_changelist"))
    assert response.status_code == 302
    assert "login" in response.url


def test_staff_without_the_view_permission_are_refused_by_the_admin(client, transcript):
    client.force_login(make_staff("staff"))

    assert client.get(reverse("admin:conversations_conversation_changelist")).status_code == 403
    assert client.get(reverse("admin:conversations_conversation_change", args=[transcript.pk])).status_code == 403
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200 and not index.context["app_list"]


def test_the_conversation_permission_alone_shows_no_transcript_and_searches_no_message(client, transcript):
    client.force_login(make_staff("staff", "view_conversation"))

    page = client.get(reverse("admin:conversations_conversation_change", args=[transcript.pk]))
    assert page.status_code == 200
    assert b"10 + 10 = 20." not in page.content
    found = client.get(reverse("admin:conversations_conversation_changelist"), {"q": "10 + 10 = 20"})
    assert found.context["cl"].result_count == 0
    by_title = client.get(reverse("admin:conversations_conversation_changelist"), {"q": "What is 10"})
    assert by_title.context["cl"].result_count == 1


def test_nobody_adds_changes_or_deletes_conversations_in_the_admin(client, transcript):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    assert client.get(reverse("admin:conversations_conversation_add")).status_code == 403
    assert client.post(reverse("admin:conversations_conversation_delete", args=[transcript.pk])).status_code == 403
    assert (
        client.post(
            reverse("admin:conversations_conversation_change", args=[transcript.pk]), {"title": "x"}
        ).status_code
        == 403
    )
    transcript.refresh_from_db()
    assert transcript.title == "What is 10 + 10?"
