"""Personal API tokens: stored hashed, shown once, expiring, revocable; bad ones and CSRF-less cookie POSTs refused."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from api.errors import CSRF_FAILED, INVALID_TOKEN, NOT_AUTHENTICATED
from api.models import ApiToken
from api.services import TOKEN_PREFIX, api_token_create, api_token_revoke
from api.views import TOKEN_REVOKED
from tests.support.api import AsgiClient, TokenClient
from tests.support.users import make_user

NEW_TOKEN = re.compile(r'data-testid="new-token-value">([^<]+)<')


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def stored_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_apitoken")
        return cursor.fetchall()


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def test_only_a_hash_and_a_short_prefix_of_a_token_are_stored(alice):
    created = api_token_create(user=alice, name="laptop")

    assert created.secret.startswith(TOKEN_PREFIX) and len(created.secret) >= len(TOKEN_PREFIX) + 43
    token = ApiToken.objects.get()
    assert token.digest == hashlib.sha256(created.secret.encode()).hexdigest()
    assert created.secret.startswith(token.prefix) and len(token.prefix) < 16
    assert not any(created.secret in str(value) for row in stored_rows() for value in row)


def test_the_account_page_requires_login(client):
    response = client.get(reverse("api_tokens"))

    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_a_new_token_is_shown_once_then_listed_by_name_and_prefix(alice_client, alice):
    created = alice_client.post(reverse("api_tokens"), {"name": "laptop script"})

    assert created.status_code == 200
    secret = NEW_TOKEN.search(created.content.decode()).group(1)
    token = ApiToken.objects.get(user=alice)
    assert token.name == "laptop script" and secret.startswith(token.prefix)
    assert "no-store" in created["Cache-Control"]

    later = alice_client.get(reverse("api_tokens")).content.decode()
    assert secret not in later
    assert "laptop script" in later and token.prefix in later
    assert not any(secret in str(value) for row in stored_rows() for value in row)


@pytest.mark.parametrize(("lifetime", "days"), [("30", 30), ("90", 90), ("365", 365), ("never", None), (None, 90)])
def test_a_new_token_works_for_the_lifetime_chosen_and_the_list_says_until_when(alice_client, alice, lifetime, days):
    before = datetime.now(UTC)
    form = {"name": "script"} | ({"lifetime": lifetime} if lifetime else {})

    created = alice_client.post(reverse("api_tokens"), form).content.decode()

    token = ApiToken.objects.get(user=alice)
    listed = re.search(r'data-testid="token-expires">(.*?)</td>', created).group(1)
    if days is None:
        assert token.expires is None and listed == "never" and "until you revoke it" in created
    else:
        assert before + timedelta(days=days) <= token.expires <= datetime.now(UTC) + timedelta(days=days)
        assert token.expires.date().isoformat() in listed


def test_the_form_offers_30_90_365_days_or_never_with_90_chosen(alice_client):
    page = alice_client.get(reverse("api_tokens")).content.decode()

    offered = re.findall(r'<option value="([^"]+)"( selected)?>', page)
    assert offered == [("30", ""), ("90", " selected"), ("365", ""), ("never", "")]


def test_an_unknown_lifetime_creates_no_token(alice_client):
    response = alice_client.post(reverse("api_tokens"), {"name": "script", "lifetime": "36500"})

    assert response.status_code == 200 and "field--invalid" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_an_expired_token_is_no_longer_listed(alice_client, alice):
    token = api_token_create(user=alice, name="old script").token
    ApiToken.objects.filter(pk=token.pk).update(expires=datetime.now(UTC) - timedelta(seconds=1))

    assert f'data-token-id="{token.pk}"' not in alice_client.get(reverse("api_tokens")).content.decode()


def test_the_admin_shows_tokens_to_staff_with_the_view_permission_only_never_their_hash(client, alice):
    token = api_token_create(user=alice, name="laptop").token
    staff = make_user("staff", is_staff=True)
    client.force_login(staff)
    changelist = reverse("admin:api_apitoken_changelist")
    assert client.get(changelist).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    listing = client.get(changelist)
    page = client.get(reverse("admin:api_apitoken_change", args=[token.pk]))

    assert listing.status_code == 200 and "laptop" in listing.content.decode()
    assert page.status_code == 200 and token.digest not in page.content.decode()
    assert client.post(reverse("admin:api_apitoken_delete", args=[token.pk]), {"post": "yes"}).status_code == 403
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_a_nameless_token_is_not_created(alice_client):
    response = alice_client.post(reverse("api_tokens"), {"name": "  "})

    assert response.status_code == 200 and "field--invalid" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_nav_links_to_the_tokens_page(alice_client):
    page = alice_client.get(reverse("conversation_list")).content.decode()

    assert f'href="{reverse("api_tokens")}"' in page


def test_revoking_from_the_page_removes_the_token_and_others_tokens_are_out_of_reach(alice_client, alice, bob):
    mine = api_token_create(user=alice, name="mine").token
    theirs = api_token_create(user=bob, name="theirs").token

    response = alice_client.post(reverse("api_token_revoke", args=[mine.pk]), follow=True)
    assert TOKEN_REVOKED in response.content.decode()
    assert f'data-token-id="{mine.pk}"' not in response.content.decode()
    assert alice_client.post(reverse("api_token_revoke", args=[theirs.pk])).status_code == 404
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked is not None and theirs.revoked is None
    assert alice_client.get(reverse("api_token_revoke", args=[mine.pk])).status_code == 405


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_bad_or_revoked_token_is_a_401_with_a_json_error(alice):
    created = await _create_token(alice)
    assert (await TokenClient(created.secret).get("/api/conversations/")).status_code == 200

    await _revoke(alice, created.token.pk)
    for secret in [created.secret, created.secret[:-1] + "x", "", TOKEN_PREFIX + "nonsense"]:
        response = await TokenClient(secret).get("/api/conversations/")
        assert response.status_code == 401, secret
        assert response.json() == error("unauthorized", INVALID_TOKEN)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_expired_token_is_a_401_with_the_invalid_token_answer(alice):
    created = await _create_token(alice)
    assert (await TokenClient(created.secret).get("/api/conversations/")).status_code == 200

    expired = datetime.now(UTC) - timedelta(seconds=1)
    await ApiToken.objects.filter(pk=created.token.pk).aupdate(expires=expired)
    response = await TokenClient(created.secret).get("/api/conversations/")

    assert response.status_code == 401
    assert response.json() == error("unauthorized", INVALID_TOKEN)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_token_of_a_deactivated_user_is_refused(transactional_db):
    carol = await _user("carol", is_active=False)
    created = await _create_token(carol)

    response = await TokenClient(created.secret).get("/api/conversations/")

    assert response.status_code == 401


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_using_a_token_records_when_it_was_last_used(alice):
    created = await _create_token(alice)

    await TokenClient(created.secret).get("/api/conversations/")

    await created.token.arefresh_from_db()
    assert created.token.last_used is not None


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_another_scheme_than_bearer_is_not_authenticated(alice):
    client = AsgiClient()

    response = await client.get("/api/conversations/", headers={"Authorization": "Basic YWxpY2U6cHc="})

    assert response.status_code == 401
    assert response.json() == error("unauthorized", NOT_AUTHENTICATED)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_session_cookie_works_with_csrf_and_a_post_without_it_is_refused(alice):
    browser = AsgiClient(enforce_csrf_checks=True)
    await browser.aforce_login(alice)

    assert (await browser.get("/api/conversations/")).status_code == 200  # safe methods need no token
    refused = await browser.post("/api/conversations/")
    assert refused.status_code == 403
    assert refused.json() == error("forbidden", CSRF_FAILED)

    await browser.get(reverse("api_tokens"))  # sets the csrftoken cookie, as any page does
    csrf = browser.cookies["csrftoken"].value
    accepted = await browser.post("/api/conversations/", headers={"X-CSRFToken": csrf})
    assert accepted.status_code == 201


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_token_request_needs_no_csrf_even_with_a_session_cookie(alice):
    created = await _create_token(alice)
    client = TokenClient(created.secret, enforce_csrf_checks=True)
    await client.aforce_login(alice)

    assert (await client.post("/api/conversations/")).status_code == 201


async def _create_token(user):
    return await database_sync_to_async(api_token_create)(user=user, name="tests")


async def _revoke(user, token_id: int) -> None:
    assert await database_sync_to_async(api_token_revoke)(user=user, token_id=token_id)


async def _user(username: str, **extra):
    return await database_sync_to_async(make_user)(username, **extra)
