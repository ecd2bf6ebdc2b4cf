"""A password reset end to end against a real server process and a real SMTP server: the email
arrives, its link sets a new password once, the old password stops working, and a tab of another
session of that user is closed (4401) at once, not at its next session recheck."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from email import message_from_bytes
from email.message import Message

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from conversations.protocol import CLOSE_LOGGED_OUT
from tests.live_server import PASSWORD, Server, Session
from tests.live_tabs import LiveTab
from tests.support.deployments import live_deployment
from tests.support.mail import smtp_server

NEW_PASSWORD = "a-brand-new-passphrase-9"
LINK = re.compile(r"(https?://[^/\s]+)(/accounts/reset/[^/\s]+/[^/\s]+/)")


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 15) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} emails received, {count} expected"
        return self.messages


@pytest.fixture(scope="module")
def inbox():
    handler = Inbox()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture(scope="module")
def server(inbox):
    _, port = inbox
    with live_deployment() as deployment:
        # The default recheck (30 s): only the message to the user's sockets can close the tab in time.
        yield deployment.start_server(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(port), SOCKET_SESSION_RECHECK_SECONDS="30")


def client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.http_url, timeout=10, follow_redirects=False)


def form_post(http: httpx.Client, url: str, **data: str) -> httpx.Response:
    if "csrftoken" not in http.cookies:
        http.get(url)
    return http.post(url, data={"csrfmiddlewaretoken": http.cookies["csrftoken"], **data})


def sign_up(server: Server, username: str, email: str) -> Session:
    http = client(server)
    http.get("/accounts/signup/")
    response = form_post(
        http, "/accounts/signup/", username=username, email=email, password1=PASSWORD, password2=PASSWORD
    )
    assert response.status_code == 302, response.text[:2000]
    return Session(username=username, http=http)


def logs_in(server: Server, username: str, password: str) -> bool:
    with client(server) as http:
        http.get("/accounts/login/")
        return form_post(http, "/accounts/login/", username=username, password=password).status_code == 302


async def closed_with(tab: LiveTab, within: float) -> int | None:
    """The close code the tab receives within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                await tab.connection.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def test_a_reset_by_email_sets_a_new_password_and_closes_the_other_sessions_tab(server, inbox):
    handler, _ = inbox
    already = len(handler.messages)
    username = f"reset{uuid.uuid4().hex[:8]}"
    email = f"{username}@example.com"
    other_session = sign_up(server, username, email)
    conversation_id = other_session.new_conversation()

    async def scenario() -> tuple[int | None, float]:
        tab = await LiveTab.open(server, other_session, conversation_id)
        with client(server) as http:
            asked = await asyncio.to_thread(form_post, http, "/accounts/password_reset/", email=email)
            assert asked.status_code == 302 and asked.headers["location"] == "/accounts/password_reset/done/"
        message = (await asyncio.to_thread(handler.wait_for, already + 1))[-1]
        assert message["To"] == email
        body = message.get_payload(decode=True).decode()
        origin, path = LINK.search(body).groups()
        assert origin == server.http_url
        with client(server) as http:
            form_page = await asyncio.to_thread(http.get, path)
            assert form_page.status_code == 302  # the token leaves the URL for the session
            set_url = form_page.headers["location"]
            started = time.monotonic()
            done = await asyncio.to_thread(
                form_post, http, set_url, new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD
            )
            assert done.status_code == 302 and done.headers["location"] == "/accounts/reset/done/"
            code = await closed_with(tab, within=10)
            took = time.monotonic() - started
            reused = await asyncio.to_thread(http.get, path, follow_redirects=True)
            assert "This link does not work" in reused.text
        return code, took

    code, took = asyncio.run(scenario())

    assert code == CLOSE_LOGGED_OUT
    assert took < 5, f"the tab closed {took:.1f} s after the reset"
    assert not logs_in(server, username, PASSWORD)
    assert logs_in(server, username, NEW_PASSWORD)
    assert other_session.http.get("/").status_code == 302  # the other session is logged out too
