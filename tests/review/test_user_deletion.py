"""Deleting a user: a superuser can, in the admin (the confirmation page lists what goes), and everything
of theirs goes; other staff are refused as before; every path leaves the read record a pseudonym in
place of their name, the same one wherever they appear."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from api.models import ApiToken
from api.services import api_token_create
from conversations.models import Conversation, Feedback, Message, ToolApproval
from conversations.protocol import CLOSE_GONE
from review.models import TranscriptRead
from review.pseudonyms import user_pseudonym
from tests.support.stored import full_conversation, logged
from tests.support.users import make_staff, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def expected_pseudonym(user_id: int) -> str:
    """HMAC-SHA256(SECRET_KEY, "user:<id>"), its first 12 hex digits, worked out here on its own."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"user:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"deleted-user-{digest[:12]}"


def read(reader: User, conversation: Conversation | None, owner_username: str, number: int = 0) -> TranscriptRead:
    return TranscriptRead.objects.create(
        reader=reader,
        reader_username=reader.username,
        conversation=conversation,
        conversation_number=conversation.pk if conversation else number,
        owner_username=owner_username,
        messages_shown=True,
    )


@pytest.fixture
def root(transactional_db) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def root_client(root) -> Client:
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def alices_things(alice, bob, root):
    """Two conversations of alice's with every kind of row and their event logs, an API token, and the
    read record naming her as owner (one of a conversation she deleted since) and as reader."""
    alice.is_staff = True
    alice.save()
    kept = full_conversation(bob, "Bob's")
    things = {
        "conversations": [full_conversation(alice, "First"), full_conversation(alice, "Second")],
        "token": api_token_create(user=alice, name="laptop").secret,
        "reads": {
            "of_hers": read(root, Conversation.objects.get(title="First"), "alice"),
            "of_one_she_deleted": read(root, None, "alice", number=999),
            "by_her": read(alice, kept.conversation, "bob"),
            "others": read(root, kept.conversation, "bob"),
        },
        "bobs": kept,
    }
    return things


def assert_everything_of_alice_went(alice_id: int, things: dict) -> None:
    assert not User.objects.filter(pk=alice_id).exists()
    for stored in things["conversations"]:
        assert not Conversation.objects.filter(pk=stored.pk).exists()
        assert not Message.objects.filter(conversation_id=stored.pk).exists()
        assert not ToolApproval.objects.filter(conversation_id=stored.pk).exists()
        assert all(logged(run_id) == [] for run_id in stored.run_ids), "her runs' event logs are gone"
    assert not Feedback.objects.filter(user_id=alice_id).exists()
    assert not ApiToken.objects.filter(user_id=alice_id).exists()
    bobs = things["bobs"]
    assert Message.objects.filter(conversation_id=bobs.pk).count() == 3 and all(logged(r) for r in bobs.run_ids)


def assert_the_reads_name_her_pseudonym(alice_id: int, things: dict) -> None:
    reads = {name: TranscriptRead.objects.get(pk=r.pk) for name, r in things["reads"].items()}
    pseudonym = expected_pseudonym(alice_id)
    assert re.fullmatch(r"deleted-user-[0-9a-f]{12}", pseudonym) and user_pseudonym(alice_id) == pseudonym
    assert reads["of_hers"].owner_username == pseudonym and reads["of_hers"].reader_username == "root"
    assert reads["of_hers"].conversation_id is None
    assert reads["of_hers"].conversation_number == things["conversations"][0].pk
    assert reads["of_one_she_deleted"].owner_username == pseudonym
    assert reads["by_her"].reader_username == pseudonym and reads["by_her"].owner_username == "bob"
    assert (reads["others"].reader_username, reads["others"].owner_username) == ("root", "bob")
    assert not TranscriptRead.objects.filter(owner_username="alice").exists()
    assert not TranscriptRead.objects.filter(reader_username="alice").exists()


def test_a_superuser_deletes_a_user_in_the_admin_with_everything_of_theirs(root_client, alice, alices_things):
    url = reverse("admin:auth_user_delete", args=[alice.pk])

    confirm = root_client.get(url)

    assert confirm.status_code == 200
    assert not confirm.context["perms_lacking"] and not confirm.context["protected"]
    summary = dict(confirm.context["model_count"])
    assert summary["conversations"] == 2 and summary["messages"] == 6
    assert summary["feedback"] == 2 and summary["tool approvals"] == 2 and summary["api tokens"] == 1
    assert b"First" in confirm.content and b"Second" in confirm.content

    done = root_client.post(url, {"post": "yes"})

    assert done.status_code == 302 and done.url == reverse("admin:auth_user_changelist")
    assert_everything_of_alice_went(alice.pk, alices_things)
    assert_the_reads_name_her_pseudonym(alice.pk, alices_things)


def test_a_superuser_deletes_users_with_the_lists_bulk_action(root_client, alice, alices_things):
    changelist = reverse("admin:auth_user_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [alice.pk]}

    confirm = root_client.post(changelist, chosen)
    assert confirm.status_code == 200 and not confirm.context["perms_lacking"]
    done = root_client.post(changelist, {**chosen, "post": "yes"})

    assert done.status_code == 302
    assert_everything_of_alice_went(alice.pk, alices_things)
    assert_the_reads_name_her_pseudonym(alice.pk, alices_things)


def test_a_user_deleted_through_the_orm_leaves_the_same_pseudonym(alice, alices_things):
    alice_id = alice.pk
    alice.delete()

    assert_everything_of_alice_went(alice_id, alices_things)
    assert_the_reads_name_her_pseudonym(alice_id, alices_things)


def test_the_pseudonym_is_stable_and_differs_per_person():
    assert user_pseudonym(7) == user_pseudonym(7) == expected_pseudonym(7)
    assert user_pseudonym(7) != user_pseudonym(8)


def test_staff_who_are_not_superusers_are_still_refused_a_user_with_conversations(alice, alices_things):
    # Every permission the deletion needs but the conversations': only they stand in the way.
    staff = make_staff("helpdesk", "view_user", "change_user", "delete_user", "delete_apitoken", "view_conversation")
    client = Client()
    client.force_login(staff)
    url = reverse("admin:auth_user_delete", args=[alice.pk])

    confirm = client.get(url)
    assert confirm.status_code == 200 and confirm.context["perms_lacking"] == {"conversation"}
    assert client.post(url, {"post": "yes"}).status_code == 403

    assert User.objects.filter(pk=alice.pk).exists()
    assert Conversation.objects.filter(owner=alice).count() == 2
    assert TranscriptRead.objects.filter(owner_username="alice").count() == 2


def test_staff_who_are_not_superusers_still_delete_a_user_without_conversations(transactional_db):
    staff = make_staff("helpdesk", "view_user", "change_user", "delete_user")
    newcomer = make_user("newcomer")
    client = Client()
    client.force_login(staff)

    assert client.post(reverse("admin:auth_user_delete", args=[newcomer.pk]), {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=newcomer.pk).exists()


@pytest.mark.asyncio
async def test_her_open_tabs_are_told_when_she_is_deleted(alice, conversation, tabs):
    tab = await tabs()

    await database_sync_to_async(User.objects.filter(pk=alice.pk).delete)()

    output = await asyncio.wait_for(tab.communicator.receive_output(timeout=5), 6)
    assert output == {"type": "websocket.close", "code": CLOSE_GONE}
