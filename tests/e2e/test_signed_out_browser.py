"""Signed out in another tab, in a real browser (issue #28, item 4).

Two tabs of one user on one conversation; the person logs out in the first with the header's form. The
server closes the second tab's socket with 4401, and that tab says so at once: a sticky notice with a
link to the login page that comes back here, the connection status "Signed out" (not "Connected", not
reconnecting), the composer disabled with its text kept, and a question whose send was not acknowledged
put back into the composer instead of shown as sent. After logging in again through the link the draft
is back (sessionStorage) and the conversation works. (The socket's side: tests/js/connection_close.test.mjs.)

The header's Log out does not notify the user's sockets (a password change and "log out other sessions"
do, `accounts.sessions.other_sockets_end`): the socket finds out at its next session recheck, so this
module's server rechecks every second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.live_server import PASSWORD, Deployment, Server
from tests.support.browser import (
    answer_of,
    ask,
    conversation_id,
    counting,
    new_conversation,
    open_tab,
    serious_violations,
    sign_up,
    wait_connected,
    wait_status,
)

QUICKLY_MS = 5_000
"""The notice comes with the close (the server closes at logout), not at a periodic recheck."""

# A send that leaves the page but is never acknowledged: the socket swallows it.
SWALLOW_SENDS = "() => { WebSocket.prototype.send = function () {}; }"


@pytest.fixture(scope="module")
def rechecking_server(deployment: Deployment) -> Iterator[Server]:
    """A server of the shared deployment whose sockets recheck their session only every 5 minutes:
    a tab hears of a logout elsewhere from the logout itself, not from its recheck."""
    server = deployment.start_server(SOCKET_SESSION_RECHECK_SECONDS="300")
    yield server
    deployment.stop_server(server)


def test_logging_out_in_one_tab_signs_the_other_out_and_keeps_its_text(
    context: BrowserContext, rechecking_server: Server
):
    base = rechecking_server.http_url
    first = context.new_page()
    username = sign_up(first, base)
    url = new_conversation(first, base)
    path = f"/conversations/{conversation_id(url)}/"
    second = open_tab(context, url)
    websockets: list[str] = []
    second.on("websocket", lambda ws: websockets.append(ws.url))

    question, answer = counting(3)
    second.evaluate(SWALLOW_SENDS)
    ask(second, question)  # shown at once as a pending question; the server never hears of it
    expect(second.locator('[data-testid="message"][data-role="user"]')).to_have_count(1)

    first.get_by_test_id("logout-button").click()
    expect(first).to_have_url(re.compile(r"/accounts/login/"))

    notice = second.locator('[data-testid="notice"][data-code="signed_out"]')
    expect(notice).to_be_visible(timeout=QUICKLY_MS)
    expect(notice).to_contain_text("You were signed out")
    link = notice.get_by_role("link", name="Log in again")
    expect(link).to_have_attribute("href", f"/accounts/login/?next={quote(path, safe='')}")
    status = second.get_by_test_id("connection-status")
    expect(status).to_have_attribute("data-state", "signed_out")
    expect(status).to_have_text("Signed out")
    expect(second.locator("[data-reconnect-banner]")).to_be_hidden()
    # The unacknowledged question is not shown as sent: it is back in the (disabled) composer.
    expect(second.locator('[data-testid="message"][data-role="user"]')).to_have_count(0)
    composer = second.get_by_test_id("composer-input")
    expect(composer).to_have_value(question)
    expect(composer).to_be_disabled()
    expect(composer).to_have_attribute("placeholder", re.compile("log in again", re.I))
    expect(second.get_by_test_id("send-button")).to_be_disabled()
    assert serious_violations(second) == []
    # No reconnect loop: being back online or visible again opens no socket.
    second.evaluate(
        "() => { window.dispatchEvent(new Event('online')); document.dispatchEvent(new Event('visibilitychange')); }"
    )
    expect(status).to_have_attribute("data-state", "signed_out")
    assert websockets == []

    # Log in again through the link: back on the conversation, the draft in the composer, and it works.
    link.click()
    expect(second).to_have_url(re.compile(r"/accounts/login/"))
    second.locator("input[name=username]").fill(username)
    second.locator("input[name=password]").fill(PASSWORD)
    second.get_by_test_id("login-submit").click()
    expect(second).to_have_url(f"{base}{path}")
    wait_connected(second)
    composer = second.get_by_test_id("composer-input")
    expect(composer).to_have_value(question)
    second.get_by_test_id("send-button").click()
    wait_status(second, "completed")
    expect(answer_of(second)).to_have_text(answer)
    expect(composer).to_have_value("")
    # Sent: the draft is forgotten, a reload starts with an empty composer.
    second.reload()
    wait_connected(second)
    expect(second.get_by_test_id("composer-input")).to_have_value("")
