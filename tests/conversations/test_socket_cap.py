"""`SOCKETS_PER_USER`: a user's open sockets in one process are counted; the one past the cap is accepted,
then closed with 4429, and every socket that closes (or fails to open) is uncounted exactly once."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer

from conversations import protocol, runs
from conversations.models import Conversation
from conversations.process import ProcessState, process_state
from tests.support.answers import stored_messages
from tests.support.tabs import open_tab

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 2


@pytest.fixture
def capped(settings):
    settings.SOCKETS_PER_USER = CAP


def held(user) -> int:
    return process_state().open_sockets.get(user.pk, 0)


async def refused(conversation, user) -> tuple:
    """Open a socket past the cap: it is accepted, then closed; the tab and its close."""
    tab, connected, _ = await open_tab(conversation.pk, user)
    assert connected  # accepted: the page can read why it is closed
    return tab, await tab.communicator.receive_output(timeout=5)


@pytest.mark.asyncio
async def test_the_socket_past_the_cap_is_accepted_then_closed_with_4429(capped, tabs, conversation, alice):
    await tabs()
    await tabs()

    tab, closed = await refused(conversation, alice)

    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_TOO_MANY_SOCKETS}
    assert held(alice) == CAP
    await tab.close()
    assert held(alice) == CAP  # it was never counted, so its close takes nothing off


@pytest.mark.asyncio
async def test_a_socket_that_closes_frees_its_place(capped, tabs, conversation, alice):
    first = await tabs()
    await tabs()
    await first.close()
    assert held(alice) == CAP - 1

    again = await tabs()  # has its snapshot

    assert again.snapshot["type"] == "snapshot"
    assert held(alice) == CAP


@pytest.mark.asyncio
async def test_the_cap_is_each_users_own(capped, tabs, alice, bob):
    await tabs()
    await tabs()
    bobs = await Conversation.objects.acreate(owner=bob)

    tab, connected, _ = await open_tab(bobs.pk, bob)

    assert connected and (await tab.receive())["type"] == "snapshot"
    assert (held(alice), held(bob)) == (CAP, 1)
    await tab.close()
    assert held(bob) == 0


@pytest.mark.asyncio
async def test_frames_on_a_refused_socket_do_nothing(capped, tabs, conversation, alice):
    await tabs()
    await tabs()
    tab, _ = await refused(conversation, alice)

    await tab.ask("What is 1 + 1?")
    await tab.send({"type": "sync"})

    assert await tab.communicator.receive_nothing(timeout=0.3)
    assert await stored_messages(conversation) == []


@pytest.mark.asyncio
async def test_a_connect_that_fails_after_counting_uncounts_its_socket(capped, conversation, alice, monkeypatch):
    async def broken(conversation):
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(runs, "conversation_snapshot", broken)

    tab, connected, _ = await open_tab(conversation.pk, alice)
    assert connected  # accepted; its first snapshot is what fails
    with pytest.raises(RuntimeError):
        await tab.communicator.receive_output(timeout=5)

    assert held(alice) == 0


@pytest.mark.asyncio
async def test_a_connect_refused_by_a_channel_layer_down_uncounts_its_socket(capped, conversation, alice, monkeypatch):
    async def down(group, channel):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_add", down)

    tab, connected, code = await open_tab(conversation.pk, alice)

    assert (connected, code) == (False, protocol.CLOSE_UNAVAILABLE)
    assert held(alice) == 0
    await tab.close()
    assert held(alice) == 0  # a disconnect after it takes nothing more off


@pytest.mark.asyncio
async def test_a_user_at_the_cap_with_no_socket_left_starts_again_from_zero(capped, tabs, conversation, alice):
    tabs_opened = [await tabs() for _ in range(CAP)]
    for tab in tabs_opened:
        await tab.close()

    assert alice.pk not in process_state().open_sockets
    assert (await tabs()).snapshot["type"] == "snapshot"


def test_counting_never_goes_below_zero_and_reset_forgets_the_counts():
    state = ProcessState()
    assert state.socket_open(1, limit=1)
    assert not state.socket_open(1, limit=1)
    state.socket_closed(1)
    state.socket_closed(1)  # a second close of the same socket cannot take a place from another
    assert state.open_sockets == {}
    assert state.socket_open(1, limit=1)

    state.reset()

    assert state.open_sockets == {}
