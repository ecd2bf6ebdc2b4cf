"""API token scopes: every route declares the one it needs (read, send, approve); a token without it
gets 403 `insufficient_scope` and changes nothing, one with it gets past; the session cookie is not
scoped; the tokens page and the admin show them; tokens made before scopes keep all three."""

from __future__ import annotations

import json
import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from api.endpoints import api
from api.errors import INSUFFICIENT_SCOPE, INSUFFICIENT_SCOPE_CODE
from api.models import ALL_SCOPES, ApiToken, Scope
from api.services import UNKNOWN_SCOPE, api_token_create
from conversations.models import Conversation, Feedback, Message
from tests.messages import message_append
from tests.support.api import AsgiClient, TokenClient
from tests.support.users import make_user

SCOPE_BY_ROUTE = {
    ("GET", "/api/me"): "read",
    ("GET", "/api/assistants"): "read",
    ("GET", "/api/conversations/"): "read",
    ("POST", "/api/conversations/"): "send",
    ("GET", "/api/conversations/{conversation_id}"): "read",
    ("PATCH", "/api/conversations/{conversation_id}"): "send",
    ("DELETE", "/api/conversations/{conversation_id}"): "send",
    ("GET", "/api/conversations/{conversation_id}/export"): "read",
    ("GET", "/api/conversations/{conversation_id}/stream"): "read",
    ("POST", "/api/conversations/{conversation_id}/messages"): "send",
    ("POST", "/api/conversations/{conversation_id}/regenerate"): "send",
    ("POST", "/api/conversations/{conversation_id}/branch"): "send",
    ("POST", "/api/messages/{message_id}/edit"): "send",
    ("POST", "/api/messages/{message_id}/feedback"): "send",
    ("POST", "/api/approvals/{approval_id}"): "approve",
}
"""The decision, route by route: reading needs `read`; whatever changes a conversation or starts a
run needs `send`; deciding a tool call needs `approve`."""
NOT_SCOPED = {"openapi-json", "api-root"}
"""The API's URLs that are no operation: the OpenAPI description (public) and ninja's root."""
WORKING_BODIES = {
    "/api/conversations/{conversation_id}": {"title": "Renamed by a script"},
    "/api/conversations/{conversation_id}/messages": {"content": "What is 1 + 1?", "client_id": "scoped-1"},
    "/api/conversations/{conversation_id}/regenerate": {"client_id": "scoped-2"},
    "/api/conversations/{conversation_id}/branch": {"message_id": "{question}"},
    "/api/messages/{message_id}/edit": {"content": "What is 2 + 2?", "client_id": "scoped-3"},
    "/api/messages/{message_id}/feedback": {"rating": -1},
    "/api/approvals/{approval_id}": {"decision": "approve"},
}
"""Bodies that would do something: sent by a token without the scope, they must change nothing."""


def declared_scopes() -> dict[tuple[str, str], list[str]]:
    """What the served API declares: (method, path) -> the scopes its bearer requirement names."""
    schema = api.get_openapi_schema()
    declared = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            bearer = [need for requirement in operation["security"] for name, need in requirement.items()]
            declared[(method.upper(), path)] = sorted({scope for need in bearer for scope in need})
    return declared


ROUTES = sorted(declared_scopes())


def url_pattern_paths() -> set[str]:
    """The operation paths of api/urls.py's URL patterns, spelled as the OpenAPI description does."""
    patterns, _app, _namespace = api.urls
    return {
        "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        for pattern in patterns
        if pattern.name not in NOT_SCOPED
    }


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


@pytest.fixture
def turn(conversation) -> dict[str, int]:
    """Alice's conversation with a question and its answer: the ids a route's URL and body need."""
    question = message_append(conversation, role=Message.Role.USER, content="What is 1 + 1?")
    answer = message_append(conversation, role=Message.Role.ASSISTANT, content="2")
    return {"conversation_id": conversation.pk, "question": question.pk, "answer": answer.pk}


def route_url(path: str, ids: dict[str, int]) -> str:
    message = ids["answer"] if path.endswith("/feedback") else ids["question"]
    return path.format(conversation_id=ids["conversation_id"], message_id=message, approval_id="a" * 32)


async def call(client, method: str, url: str, body: object) -> object:
    return await client.generic(method, url, json.dumps(body) if body is not None else "", "application/json")


def token_with(user, scopes: list[str]) -> str:
    """A working token of `user` holding exactly `scopes` (the page always adds `read`; here the
    gate itself is tested, so a token may lack it)."""
    created = api_token_create(user=user, name="scoped")
    ApiToken.objects.filter(pk=created.token.pk).update(scopes=" ".join(scopes))
    return created.secret


def stored_state(conversation_id: int) -> tuple:
    conversation = Conversation.objects.get(pk=conversation_id)
    return (
        Conversation.objects.count(),
        Message.objects.count(),
        Feedback.objects.count(),
        conversation.title,
        conversation.leaf_id,
    )


def test_every_route_declares_the_scope_it_needs():
    assert declared_scopes() == {route: [scope] for route, scope in SCOPE_BY_ROUTE.items()}
    assert url_pattern_paths() == {path for _method, path in SCOPE_BY_ROUTE}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_token_without_the_routes_scope_gets_403_insufficient_scope_and_changes_nothing(
    alice, turn, method, path
):
    needed = SCOPE_BY_ROUTE.get((method, path), "a scope")
    secret = await database_sync_to_async(token_with)(alice, [s for s in ALL_SCOPES if s != needed])
    body = WORKING_BODIES.get(path) if method != "GET" else None
    if body and body.get("message_id") == "{question}":
        body = {"message_id": turn["question"]}
    before = await database_sync_to_async(stored_state)(turn["conversation_id"])

    response = await call(TokenClient(secret), method, route_url(path, turn), body)

    assert response.status_code == 403
    assert response.json() == error(INSUFFICIENT_SCOPE_CODE, INSUFFICIENT_SCOPE.format(scope=needed))
    assert response["WWW-Authenticate"] == f'Bearer realm="api", error="insufficient_scope", scope="{needed}"'
    assert await database_sync_to_async(stored_state)(turn["conversation_id"]) == before


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_token_with_only_the_routes_scope_gets_past_the_gate(alice, turn, method, path):
    secret = await database_sync_to_async(token_with)(alice, [SCOPE_BY_ROUTE[(method, path)]])
    client = TokenClient(secret)
    url = route_url(path, turn)

    # A body that does not parse: past the gate it is a 400, so no run starts. A delete takes no body.
    response = await (client.get(url) if method == "GET" else client.generic(method, url, "{", "application/json"))

    assert response.status_code not in (401, 403), (response.status_code, getattr(response, "content", b""))
    assert response.status_code == {"GET": 200, "DELETE": 204}.get(method, 400)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_session_cookie_is_not_scoped(alice, turn):
    browser = AsgiClient(enforce_csrf_checks=True)
    await browser.aforce_login(alice)
    await browser.get(reverse("api_tokens"))
    csrf = {"X-CSRFToken": browser.cookies["csrftoken"].value}

    listed = await browser.get("/api/conversations/")
    created = await browser.post("/api/conversations/", headers=csrf)
    rated = await call_with(browser, "POST", f"/api/messages/{turn['answer']}/feedback", {"rating": 1}, csrf)
    decided = await call_with(browser, "POST", "/api/approvals/" + "a" * 32, {"decision": "approve"}, csrf)

    assert (listed.status_code, created.status_code, rated.status_code) == (200, 201, 200)
    assert decided.status_code == 404  # past the gate: there is no such approval


async def call_with(client, method: str, url: str, body: object, headers: dict[str, str]) -> object:
    return await client.generic(method, url, json.dumps(body), "application/json", headers=headers)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_read_token_reads_but_cannot_send_or_approve(alice, turn):
    secret = await database_sync_to_async(lambda: api_token_create(user=alice, name="r", scopes=[]).secret)()
    client = TokenClient(secret)

    read = await client.get(f"/api/conversations/{turn['conversation_id']}")
    sent = await call(client, "POST", f"/api/conversations/{turn['conversation_id']}/messages", {"content": "Hi"})
    decided = await call(client, "POST", "/api/approvals/" + "a" * 32, {"decision": "approve"})

    assert read.status_code == 200
    assert sent.json() == error(INSUFFICIENT_SCOPE_CODE, INSUFFICIENT_SCOPE.format(scope="send"))
    assert decided.json() == error(INSUFFICIENT_SCOPE_CODE, INSUFFICIENT_SCOPE.format(scope="approve"))


def test_a_new_token_always_reads_and_an_unknown_scope_is_refused(alice):
    assert api_token_create(user=alice, name="a", scopes=["approve"]).token.scope_list == ["read", "approve"]
    assert api_token_create(user=alice, name="b").token.scope_list == list(ALL_SCOPES)
    with pytest.raises(ValueError, match=re.escape(UNKNOWN_SCOPE.format(scope="admin"))):
        api_token_create(user=alice, name="c", scopes=["admin"])
    assert ApiToken.objects.count() == 2


def test_the_form_offers_read_always_send_checked_and_approve_unchecked(client, alice):
    client.force_login(alice)

    page = client.get(reverse("api_tokens")).content.decode()

    assert re.search(r'<input type="checkbox" checked disabled data-testid="scope-read">', page)
    offered = re.findall(r'<input type="checkbox" name="scopes" value="(\w+)"[^>]*?( checked)?>', page)
    assert offered == [("send", " checked"), ("approve", "")]


@pytest.mark.parametrize(
    ("chosen", "scopes"),
    [
        ([], "read"),
        (["send"], "read, send"),
        (["approve"], "read, approve"),
        (["send", "approve"], "read, send, approve"),
    ],
)
def test_a_token_made_on_the_page_has_the_scopes_chosen_and_the_list_shows_them(client, alice, chosen, scopes):
    client.force_login(alice)

    page = client.post(reverse("api_tokens"), {"name": "script", "scopes": chosen}).content.decode()

    token = ApiToken.objects.get(user=alice)
    assert ", ".join(token.scope_list) == scopes
    assert re.search(r'data-testid="token-scopes">([^<]*)</td>', page).group(1) == scopes
    assert f"Its scopes: {scopes}." in page


def test_an_unknown_scope_from_the_page_creates_no_token(client, alice):
    client.force_login(alice)

    response = client.post(reverse("api_tokens"), {"name": "script", "scopes": ["admin"]})

    assert response.status_code == 200 and "field--invalid" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_admin_shows_each_tokens_scopes(client, alice):
    token = api_token_create(user=alice, name="laptop", scopes=["send"]).token
    staff = make_user("staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    client.force_login(staff)

    listing = client.get(reverse("admin:api_apitoken_changelist")).content.decode()
    page = client.get(reverse("admin:api_apitoken_change", args=[token.pk])).content.decode()

    assert "read send" in listing and "read send" in page


def migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_tokens_made_before_scopes_keep_all_three(transactional_db, alice):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    migrate(latest)  # from wherever an earlier test left the schema's history
    old = migrate([("api", "0002_apitoken_expires")])
    old_token = old.get_model("api", "ApiToken")
    old_token.objects.create(user_id=alice.pk, name="old script", prefix="acht_old", digest="0" * 64)

    migrate(latest)

    token = ApiToken.objects.get(name="old script")
    assert token.scope_list == list(ALL_SCOPES) == [Scope.READ, Scope.SEND, Scope.APPROVE]
    assert all(token.allows(scope) for scope in ALL_SCOPES)
