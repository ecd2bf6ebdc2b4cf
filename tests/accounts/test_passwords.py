"""Changing and resetting a password, the email asked at sign-up, and the sessions and sockets a
password change ends."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.forms import EMAIL_IN_USE
from accounts.views import OTHER_SESSIONS_ENDED
from conversations.models import Conversation
from conversations.protocol import CLOSE_LOGGED_OUT
from tests.support.tabs import open_tab
from tests.support.users import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a-brand-new-passphrase-9"
LINK = re.compile(r"https?://[^/\s]+(/accounts/reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture(autouse=True)
def counts_from_zero():
    cache.clear()
    yield
    cache.clear()


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def can_log_in(username: str, password: str) -> bool:
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def sign_up(client: Client, username: str, email: str = "", password: str = PASSWORD, **extra):
    data = {"username": username, "email": email, "password1": password, "password2": password}
    return client.post(reverse("signup"), data, **extra)


# --- sign-up asks for an email ---------------------------------------------------------------------


def test_sign_up_stores_the_email_it_is_given_and_it_is_optional(client):
    page = client.get(reverse("signup")).content.decode()
    assert 'name="email"' in page and 'dir="auto"' in page

    assert sign_up(client, "carol", "Carol@Example.COM").status_code == 302
    client.logout()
    assert sign_up(client, "dave").status_code == 302

    assert User.objects.get(username="carol").email == "Carol@example.com"  # the domain is normalised
    assert User.objects.get(username="dave").email == ""


def test_sign_up_requires_the_email_when_the_setting_says_so(client, settings):
    settings.SIGNUP_REQUIRE_EMAIL = True

    refused = sign_up(client, "carol")

    assert refused.status_code == 200
    assert refused.context["form"].errors["email"] == ["This field is required."]
    assert not User.objects.filter(username="carol").exists()


def test_sign_up_refuses_an_invalid_email_and_one_another_account_uses_in_any_case(client):
    make_user("alice", email="alice@example.com")

    invalid = sign_up(client, "carol", "not-an-address")
    taken = sign_up(client, "carol", "ALICE@example.com")

    assert invalid.context["form"].errors["email"] == ["Enter a valid email address."]
    assert taken.context["form"].errors["email"] == [EMAIL_IN_USE]
    assert EMAIL_IN_USE in taken.content.decode()
    assert not User.objects.filter(username="carol").exists()


# --- the sign-up throttle counts created accounts only ----------------------------------------------


def test_sign_ups_refused_for_a_form_error_do_not_count_but_created_accounts_do(client, settings):
    settings.SIGNUP_RATE_PER_IP = "2/h"

    for attempt in range(5):  # mistyped passwords: the form comes back, nothing counted
        mistyped = client.post(
            reverse("signup"), {"username": f"x{attempt}", "password1": PASSWORD, "password2": "typo"}
        )
        assert mistyped.status_code == 200
    for username in ["carol", "dave"]:
        assert sign_up(client, username).status_code == 302
        client.logout()

    refused = sign_up(client, "erin")
    assert refused.status_code == 429
    assert not User.objects.filter(username="erin").exists()
    assert sign_up(client, "erin", REMOTE_ADDR="192.0.2.9").status_code == 302  # another address


# --- reset by email ---------------------------------------------------------------------------------


def test_the_login_page_links_to_the_reset_page(client):
    page = client.get(reverse("login")).content.decode()
    assert "Forgot your password?" in page
    assert f'href="{reverse("password_reset")}"' in page


def test_a_reset_request_answers_the_same_whether_or_not_the_address_has_an_account(client):
    make_user("alice", email="alice@example.com")

    known = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    unknown = client.post(reverse("password_reset"), {"email": "nobody@example.com"})

    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == reverse("password_reset_done")
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    assert mail.outbox[0].from_email == "Agent Chat <noreply@localhost>"
    assert LINK.search(mail.outbox[0].body)


def test_reset_requests_over_the_per_ip_limit_get_a_429_and_send_nothing(client, settings):
    settings.PASSWORD_RESET_RATE_PER_IP = "2/h"
    make_user("alice", email="alice@example.com")

    for _ in range(2):
        assert client.post(reverse("password_reset"), {"email": "nobody@example.com"}).status_code == 302
    refused = client.post(reverse("password_reset"), {"email": "alice@example.com"})

    assert refused.status_code == 429
    assert "registration/throttled.html" in [t.name for t in refused.templates]
    assert mail.outbox == []
    assert client.get(reverse("password_reset")).status_code == 200  # GETs do not count
    other = client.post(reverse("password_reset"), {"email": "alice@example.com"}, REMOTE_ADDR="192.0.2.9")
    assert other.status_code == 302


def test_the_link_sets_a_new_password_once_and_ends_every_session(client):
    alice = make_user("alice", email="alice@example.com")
    elsewhere = logged_in(alice)
    client.post(reverse("password_reset"), {"email": "alice@example.com"})
    link = LINK.search(mail.outbox[0].body)[1]

    form = client.get(link, follow=True)  # Django moves the token out of the URL into the session
    assert form.context["validlink"] and 'dir="auto"' in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    assert not can_log_in("alice", PASSWORD)
    assert can_log_in("alice", NEW_PASSWORD)
    assert elsewhere.get(reverse("conversation_list")).status_code == 302  # sent to the login page
    again = Client().get(link, follow=True)
    assert not again.context["validlink"]
    assert "This link does not work" in again.content.decode()


# --- change password and log out other sessions ------------------------------------------------------


def test_changing_the_password_keeps_this_session_and_ends_the_others():
    alice = make_user("alice")
    here, elsewhere = logged_in(alice), logged_in(alice)
    assert Client().get(reverse("password_change")).status_code == 302  # a login is needed
    page = here.get(reverse("password_change")).content.decode()
    assert 'dir="auto"' in page and "Log out other sessions" in page

    wrong = here.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 200 and wrong.context["form"].errors["old_password"]
    changed = here.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert changed["Location"] == reverse("password_change_done")
    assert here.get(reverse("conversation_list")).status_code == 200
    assert elsewhere.get(reverse("conversation_list")).status_code == 302
    assert can_log_in("alice", NEW_PASSWORD) and not can_log_in("alice", PASSWORD)


def test_log_out_other_sessions_is_a_post_with_csrf_and_ends_only_the_users_other_sessions():
    alice, bob = make_user("alice"), make_user("bob")
    here = Client(enforce_csrf_checks=True)
    here.force_login(alice)
    elsewhere, bobs = logged_in(alice), logged_in(bob)
    url = reverse("logout_other_sessions")

    assert here.get(url).status_code == 405
    assert here.post(url).status_code == 403  # no CSRF token
    assert elsewhere.get(reverse("conversation_list")).status_code == 200
    page = here.get(reverse("password_change"))
    token = page.context["csrf_token"]
    done = here.post(url, {"csrfmiddlewaretoken": str(token)}, follow=True)

    assert OTHER_SESSIONS_ENDED in done.content.decode()
    assert here.get(reverse("conversation_list")).status_code == 200
    assert elsewhere.get(reverse("conversation_list")).status_code == 302
    assert bobs.get(reverse("conversation_list")).status_code == 200
    assert Session.objects.count() == 2  # alice's here and bob's


# --- their sockets close at once ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["change", "logout_others", "reset"])
async def test_the_sockets_of_the_ended_sessions_close_with_4401_at_once(settings, how):
    settings.SOCKET_SESSION_RECHECK_SECONDS = 600  # only the message to the user's group can close it now
    alice = await sync_to_async(make_user)("alice", email="alice@example.com")
    conversation = await Conversation.objects.acreate(owner=alice)
    tab, connected, _ = await open_tab(conversation.pk, alice)
    assert connected and (await tab.receive())["type"] == "snapshot"

    def act() -> None:
        here = logged_in(alice)
        if how == "change":
            here.post(
                reverse("password_change"),
                {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
            )
        elif how == "logout_others":
            here.post(reverse("logout_other_sessions"))
        else:
            Client().post(reverse("password_reset"), {"email": "alice@example.com"})
            form = Client()
            page = form.get(LINK.search(mail.outbox[0].body)[1], follow=True)
            form.post(page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    await sync_to_async(act)()

    closed = await tab.communicator.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_LOGGED_OUT}


@pytest.mark.asyncio
async def test_a_socket_of_the_session_that_stays_logged_in_stays_open(settings):
    settings.SOCKET_SESSION_RECHECK_SECONDS = 600
    alice = await sync_to_async(make_user)("alice")
    conversation = await Conversation.objects.acreate(owner=alice)
    here = await sync_to_async(logged_in)(alice)
    tab, connected, _ = await open_tab(conversation.pk, alice)  # another session of alice's
    mine = await open_tab_with_cookie(conversation.pk, here.cookies["sessionid"].value)
    assert connected and (await tab.receive())["type"] == "snapshot"

    await sync_to_async(here.post)(reverse("logout_other_sessions"))

    assert await tab.communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_LOGGED_OUT}
    assert await mine.communicator.receive_nothing(timeout=1)
    await mine.communicator.disconnect()


async def open_tab_with_cookie(conversation_id: int, session_key: str):
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application
    from tests.support.tabs import ORIGIN, Tab

    headers = [(b"host", b"localhost"), (b"origin", ORIGIN), (b"cookie", f"sessionid={session_key}".encode())]
    communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    tab = Tab(communicator)
    assert (await tab.receive())["type"] == "snapshot"
    return tab
