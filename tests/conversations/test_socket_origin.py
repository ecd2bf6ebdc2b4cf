"""The socket opens only from the site's own origin (`chatsite.origin`): its scheme, host and port,
or a trusted origin, to a Host the site serves. Handshakes through the whole ASGI application,
the user's session cookie in every one, so that only the origin decides."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chatsite.asgi import application
from chatsite.origin import origin_allowed
from tests.support.users import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


async def handshake(
    user, conversation, *, origin: str | None, host: str = "localhost", scheme: str = "ws", headers=()
) -> bool:
    """Open the conversation's socket as a browser would; whether it was accepted."""
    cookie = await database_sync_to_async(session_cookie)(user)
    sent = [(b"host", host.encode()), (b"cookie", f"sessionid={cookie}".encode()), *headers]
    if origin is not None:
        sent.append((b"origin", origin.encode("latin1")))
    communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation.pk}/", headers=sent)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return connected


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("host", "origin", "scheme"),
    [
        ("localhost", "http://localhost", "ws"),
        ("localhost:8000", "http://localhost:8000", "ws"),
        ("127.0.0.1:18000", "http://127.0.0.1:18000", "ws"),
        ("localhost", "https://localhost", "wss"),
        ("localhost:8443", "https://localhost:8443", "wss"),
    ],
)
async def test_a_socket_from_the_sites_own_origin_opens(alice, conversation, host, origin, scheme):
    assert await handshake(alice, conversation, host=host, origin=origin, scheme=scheme)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("host", "origin", "scheme"),
    [
        # another port of the same host
        ("localhost:8000", "http://localhost:18299", "ws"),
        ("localhost", "http://localhost:9999", "ws"),
        ("127.0.0.1:8000", "http://127.0.0.1:18299", "ws"),
        ("127.0.0.1:8000", "http://127.0.0.1", "ws"),
        # another scheme
        ("localhost", "https://localhost", "ws"),
        ("localhost", "http://localhost", "wss"),
        ("127.0.0.1:8000", "https://127.0.0.1:8000", "ws"),
        # another host, also one this site serves
        ("localhost", "http://evil.example", "ws"),
        ("localhost", "http://127.0.0.1", "ws"),
        ("localhost", "http://sub.localhost", "ws"),
        # a Host this site does not serve, even with its own origin
        ("evil.example", "http://evil.example", "ws"),
        ("localhost@evil.example", "http://localhost@evil.example", "ws"),
    ],
)
async def test_a_socket_from_another_port_scheme_or_host_is_refused(alice, conversation, host, origin, scheme):
    assert not await handshake(alice, conversation, host=host, origin=origin, scheme=scheme)


@pytest.mark.asyncio
@pytest.mark.parametrize("origin", [None, "", "null", "http://[::1", "localhost", "http://localhost/", "\xff"])
async def test_a_socket_with_no_null_or_malformed_origin_is_refused(alice, conversation, origin):
    assert not await handshake(alice, conversation, origin=origin)


@pytest.mark.asyncio
async def test_two_origin_headers_are_refused(alice, conversation):
    second = [(b"origin", b"http://evil.example")]
    assert not await handshake(alice, conversation, origin="http://localhost", headers=second)


@pytest.mark.asyncio
async def test_a_trusted_origin_opens_while_the_host_is_the_sites(settings, alice, conversation):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]

    assert await handshake(alice, conversation, origin="https://chat.example.com")
    assert await handshake(alice, conversation, origin="https://example.org")
    assert await handshake(alice, conversation, origin="https://app.example.org")
    assert not await handshake(alice, conversation, origin="http://chat.example.com")  # not its scheme
    assert not await handshake(alice, conversation, origin="https://chat.example.com:8443")  # nor its port
    assert not await handshake(alice, conversation, origin="http://app.example.org")
    assert not await handshake(alice, conversation, origin="https://example.org.evil.example")
    assert not await handshake(alice, conversation, host="evil.example", origin="https://chat.example.com")


@pytest.mark.asyncio
async def test_behind_a_tls_proxy_the_forwarded_scheme_counts(settings, alice, conversation):
    forwarded_https = [(b"x-forwarded-proto", b"https")]

    assert not await handshake(alice, conversation, origin="https://localhost", headers=forwarded_https)
    settings.SECURE_PROXY_SSL_HEADER = PROXY_SSL_HEADER
    assert await handshake(alice, conversation, origin="https://localhost", headers=forwarded_https)
    assert not await handshake(alice, conversation, origin="http://localhost", headers=forwarded_https)
    assert await handshake(alice, conversation, origin="http://localhost")  # no header: the socket's own scheme


def test_the_check_is_the_handshake_alone():
    scope = {"type": "websocket", "path": "/ws/conversations/1/", "headers": [(b"host", b"localhost:8000")]}

    assert origin_allowed({**scope, "headers": [*scope["headers"], (b"origin", b"http://localhost:8000")]})
    assert not origin_allowed({**scope, "headers": [*scope["headers"], (b"origin", b"http://localhost:8001")]})
    assert not origin_allowed(scope)
