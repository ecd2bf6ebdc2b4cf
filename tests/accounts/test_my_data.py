"""My data: the zip of everything of mine (every version of every message, nobody else's, no secret),
and deleting my account (every row of mine, my sessions; a wrong password, the last superuser)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db.models import ForeignKey
from django.test import Client
from django.urls import reverse

from accounts import my_data
from accounts.my_data_views import ACCOUNT_DELETED, LAST_SUPERUSER, WRONG_PASSWORD
from api.models import ApiToken
from api.services import api_token_create
from conversations.models import Conversation, Feedback, Message, ToolApproval
from tests.messages import message_append
from tests.support.stored import full_conversation, logged
from tests.support.users import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def counts_from_zero():
    cache.clear()
    yield
    cache.clear()


def logged_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


async def streamed(response) -> bytes:
    """The body, read as the ASGI server reads it: the zip is streamed from an async iterator."""
    return b"".join([chunk async for chunk in response.streaming_content])


def download(client: Client) -> zipfile.ZipFile:
    response = client.post(reverse("account_export"))
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/zip"
    body = async_to_sync(streamed)(response)
    assert int(response["Content-Length"]) == len(body)
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    return archive


def everything(archive: zipfile.ZipFile) -> bytes:
    return b"".join(archive.read(name) for name in archive.namelist())


# --- the download ---------------------------------------------------------------------------------


def test_the_page_explains_the_download_and_a_post_without_csrf_is_refused(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get(reverse("account_export"))
    assert page.status_code == 200
    assert b"What the download holds" in page.content and b"csrfmiddlewaretoken" in page.content
    assert client.post(reverse("account_export")).status_code == 403


def test_the_zip_holds_every_version_tool_steps_feedback_approvals_markdown_profile_and_readme(alice):
    stored = full_conversation(alice, title="Sums")
    secret = api_token_create(user=alice, name="laptop script", scopes=["read"]).secret
    client = logged_in(alice)

    response = client.post(reverse("account_export"))
    today = response["Content-Disposition"].split("agentchat-alice-")[1][:10]
    assert response["Content-Disposition"] == f'attachment; filename="agentchat-alice-{today}.zip"'
    archive = download(client)

    names = archive.namelist()
    assert "profile.json" in names and "README.txt" in names
    stem = f"conversations/{stored.pk}-sums"
    assert f"{stem}.json" in names and f"{stem}.md" in names
    data = json.loads(archive.read(f"{stem}.json"))
    assert data["title"] == "Sums"
    by_content = {m["content"]: m for m in data["messages"]}
    assert set(by_content) == {"What is 12 times 7?", "12 × 7 = 84.", "84."}
    first, second = by_content["12 × 7 = 84."], by_content["84."]
    question = by_content["What is 12 times 7?"]
    assert first["parent_id"] == second["parent_id"] == question["id"]  # two versions of one answer
    assert [first["on_branch_shown"], second["on_branch_shown"]].count(True) == 1
    assert first["tool_steps"] == [{"call_id": "c1", "name": "multiply", "args": {"x": 12, "y": 7}, "output": 84}]
    assert first["usage"]["total_tokens"] == 14 and first["status"] == "completed" and first["finished"]
    assert first["feedback"]["rating"] == 1 and first["feedback"]["comment"] == "right"
    assert first["approvals"][0]["tool"] == "multiply" and first["approvals"][0]["decision"] == "approved"
    assert first["approvals"][0]["decided_by_you"] is True

    markdown = archive.read(f"{stem}.md").decode()
    assert "# Sums" in markdown and "What is 12 times 7?" in markdown

    profile = json.loads(archive.read("profile.json"))
    assert profile["username"] == "alice" and profile["date_joined"]
    assert profile["api_tokens"] == [
        {
            "name": "laptop script",
            "scopes": ["read"],
            **{k: profile["api_tokens"][0][k] for k in ("created", "expires", "revoked", "last_used")},
        }
    ]
    readme = archive.read("README.txt").decode()
    assert "profile.json" in readme and "1 conversation(s), 3 message(s)" in readme

    token = ApiToken.objects.get(user=alice)
    blob = everything(archive)
    for forbidden in (secret, token.digest, alice.password, alice.password.split("$")[-1]):
        assert forbidden.encode() not in blob


def test_another_users_data_is_never_in_the_zip(alice, bob):
    full_conversation(alice, title="Mine")
    theirs = Conversation.objects.create(owner=bob, title="Bob's secret plan")
    message_append(theirs, role="user", content="bob-only-words-xyzzy")
    api_token_create(user=bob, name="bob's token")

    blob = everything(download(logged_in(alice)))

    for word in (b"xyzzy", b"Bob's secret plan", b"bob's token", b"bob"):
        assert word not in blob


def test_any_text_makes_a_valid_zip_and_valid_json(alice, monkeypatch):
    """Lone surrogates and NUL never reach the database here (neither engine stores them), so they
    are put in the data the zip is written from: the JSON keeps them escaped, the Markdown replaces them."""
    odd = "lone \udfff surrogate, NUL \x00, emoji 🎉, rtl שלום, \u202e override"
    conversation = Conversation.objects.create(owner=alice, title="odd \x01 title 🎉")
    message_append(conversation, role="user", content="emoji 🎉, rtl שלום, \x7f")
    real_data = my_data.conversation_data

    def with_odd_text(*, conversation):
        data = real_data(conversation=conversation)
        data["messages"][0]["content"] = odd
        data["title"] = "\ud800" + data["title"]
        return data

    monkeypatch.setattr(my_data, "conversation_data", with_odd_text)
    monkeypatch.setattr(my_data, "conversation_export_markdown", lambda conversation: f"# x\n\n{odd}\n")

    archive = download(logged_in(alice))

    json_name = next(n for n in archive.namelist() if n.endswith(".json") and n.startswith("conversations/"))
    data = json.loads(archive.read(json_name))
    assert data["messages"][0]["content"] == odd and data["title"] == "\ud800odd \x01 title 🎉"
    markdown = archive.read(json_name[:-5] + ".md").decode("utf-8")
    assert "lone \ufffd surrogate, NUL \x00, emoji 🎉, rtl שלום" in markdown


def test_past_the_bound_the_download_is_refused_with_a_message(alice, monkeypatch):
    full_conversation(alice)
    monkeypatch.setattr(my_data, "MAX_MESSAGES", 2)
    response = logged_in(alice).post(reverse("account_export"))
    assert response.status_code == 413
    assert b"more than this page can pack" in response.content


def test_the_pages_need_a_login(client):
    for name in ("account_export", "account_delete"):
        for method in (client.get, client.post):
            response = method(reverse(name))
            assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- deleting the account -------------------------------------------------------------------------


def rows_referencing(user_id: int, conversation_ids: list[int], message_ids: list[int]) -> dict[str, int]:
    """Rows in every table with a foreign key to the user, their conversations or their messages."""
    targets = {
        get_user_model(): [user_id],
        Conversation: conversation_ids,
        Message: message_ids,
    }
    found: dict[str, int] = {}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, ForeignKey) and field.related_model in targets:
                count = model.objects.filter(**{f"{field.attname}__in": targets[field.related_model]}).count()
                if count:
                    found[f"{model._meta.label}.{field.name}"] = count
    return found


def sessions_of(user_id: int) -> int:
    return sum(1 for s in Session.objects.all() if str(s.get_decoded().get("_auth_user_id")) == str(user_id))


def test_the_page_shows_what_goes_and_asks_for_the_password(alice):
    full_conversation(alice, title="Sums")
    page = logged_in(alice).get(reverse("account_delete"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="count-conversations">1<' in html and 'data-testid="count-messages">3<' in html
    assert '<li dir="auto">Sums</li>' in html and 'type="password"' in html


def test_the_right_password_deletes_every_row_session_and_log_and_logs_out(alice, bob):
    mine = [full_conversation(alice, title="One"), full_conversation(alice, title="Two")]
    api_token_create(user=alice, name="t")
    others = full_conversation(bob)
    conversation_ids = [s.pk for s in mine]
    message_ids = list(Message.objects.filter(conversation__owner=alice).values_list("pk", flat=True))
    client, elsewhere, bobs = logged_in(alice), logged_in(alice), logged_in(bob)
    assert sessions_of(alice.pk) == 2
    before = rows_referencing(alice.pk, conversation_ids, message_ids)
    assert {
        "conversations.Conversation.owner",
        "conversations.Message.conversation",
        "conversations.Feedback.user",
        "conversations.ToolApproval.conversation",
        "api.ApiToken.user",
    } <= set(before)

    response = client.post(reverse("account_delete"), {"password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("login")
    assert ACCOUNT_DELETED in response.content.decode()
    assert not User.objects.filter(pk=alice.pk).exists()
    assert rows_referencing(alice.pk, conversation_ids, message_ids) == {}
    assert sessions_of(alice.pk) == 0
    assert all(logged(run_id) == [] for s in mine for run_id in s.run_ids)
    for who in (client, elsewhere):
        assert who.get(reverse("conversation_list"))["Location"].startswith(reverse("login"))
    assert bobs.get(reverse("conversation_list")).status_code == 200
    assert Message.objects.filter(conversation_id=others.pk).count() == 3 and sessions_of(bob.pk) == 1
    assert (
        Feedback.objects.filter(user=bob).count() == 1
        and ToolApproval.objects.filter(conversation_id=others.pk).count() == 1
    )


def test_a_wrong_password_deletes_nothing_and_is_counted_with_logins(alice, settings):
    settings.LOGIN_RATE_PER_ACCOUNT = "3/h"
    stored = full_conversation(alice)
    client = logged_in(alice)

    for _ in range(3):
        response = client.post(reverse("account_delete"), {"password": "not it"})
        assert response.status_code == 400 and WRONG_PASSWORD in response.content.decode()
    throttled = client.post(reverse("account_delete"), {"password": PASSWORD})

    assert throttled.status_code == 429
    assert User.objects.filter(pk=alice.pk).exists() and Message.objects.filter(conversation_id=stored.pk).count() == 3
    assert client.get(reverse("conversation_list")).status_code == 200  # still logged in
    assert Client().post(reverse("login"), {"username": "ALICE", "password": PASSWORD}).status_code == 429


def test_the_last_superuser_is_refused_and_another_superuser_lets_them_go(alice):
    admin = make_user("root", is_superuser=True, is_staff=True)
    client = logged_in(admin)

    page = client.get(reverse("account_delete"))
    assert LAST_SUPERUSER in page.content.decode() and 'type="password"' not in page.content.decode()
    refused = client.post(reverse("account_delete"), {"password": PASSWORD})
    assert refused.status_code == 400 and User.objects.filter(pk=admin.pk).exists()

    make_user("inactive-root", is_superuser=True, is_active=False)
    assert client.post(reverse("account_delete"), {"password": PASSWORD}).status_code == 400

    make_user("root2", is_superuser=True)
    assert client.post(reverse("account_delete"), {"password": PASSWORD}).status_code == 302
    assert not User.objects.filter(pk=admin.pk).exists()
