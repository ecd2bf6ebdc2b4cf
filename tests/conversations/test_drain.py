"""A process told to stop drains: it starts no new run, ends its event streams, lets its runs finish
for `AGENT_DRAIN_SECONDS`, and stops the rest `interrupted` saying the server restarted."""

from __future__ import annotations

import asyncio
import signal

import pytest

from chatsite import lifespan
from conversations import protocol
from conversations.models import Message
from conversations.process import process_state
from conversations.sending import RESTART_RETRY_AFTER, RESTARTING
from conversations.services import RUN_RESTARTED
from tests.support.answers import stored_messages
from tests.support.api import send_message, sse_reader, stream_url
from tests.support.tabs import is_token_with

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SETTLE = 10.0


async def test_a_draining_process_refuses_a_send_on_the_socket_and_the_api_and_stores_nothing(tabs, conversation, api):
    tab = await tabs()
    process_state().begin_drain()

    await tab.ask("count to 3", client_id="late")
    refused = (await tab.receive_until(lambda f: f.get("type") == "error"))[-1]
    answered = await send_message(api, conversation.pk, "count to 3", client_id="late-api")

    assert (refused["code"], refused["message"], refused["client_id"]) == (protocol.RESTARTING, RESTARTING, "late")
    assert refused["retry_after"] == RESTART_RETRY_AFTER
    assert answered.status_code == 503
    assert answered.json()["error"]["code"] == "restarting"
    assert answered["Retry-After"] == str(RESTART_RETRY_AFTER)
    assert await stored_messages(conversation) == []


async def test_an_event_stream_ends_when_the_drain_begins_so_its_client_reconnects_elsewhere(conversation, api):
    reader = await sse_reader(await api.get(stream_url(conversation)))

    process_state().begin_drain()

    await asyncio.wait_for(reader.to_end(), SETTLE)
    assert reader.comments[-1] == "server restarting: reconnect with Last-Event-ID"


async def test_a_run_finishes_within_the_drain_and_is_stored_completed(tabs, conversation, paced):
    paced(200)
    tab = await tabs()
    await tab.ask("count to 60")
    await tab.receive_until(is_token_with("3,"))

    assert await process_state().shutdown(timeout=SETTLE + 5, finish_within=SETTLE) == []

    seen = await tab.run_events_until_done()
    assert seen[-1]["status"] == "completed"
    answer = (await stored_messages(conversation))[-1]
    assert answer.status == Message.Status.COMPLETED and answer.content.endswith("60.")


async def test_a_run_past_the_drain_is_stopped_interrupted_saying_the_server_restarted(tabs, conversation, paced):
    paced(50)
    tab = await tabs()
    await tab.ask("count to 500")
    await tab.receive_until(is_token_with("3,"))

    await process_state().shutdown(timeout=SETTLE, finish_within=0.3)

    seen = await tab.run_events_until_done()
    assert (seen[-2]["code"], seen[-2]["message"], seen[-1]["status"]) == ("interrupted", RUN_RESTARTED, "interrupted")
    answer = (await stored_messages(conversation))[-1]
    assert (answer.status, answer.error) == ("interrupted", RUN_RESTARTED)
    assert answer.content.startswith("1, 2, 3,")


async def test_the_lifespan_sweeps_from_the_start_and_a_stop_signal_begins_the_drain(settings, monkeypatch):
    settings.RUN_WATCHDOG = True
    told: list[int] = []
    monkeypatch.setattr(signal, "signal", lambda number, handler: handlers.__setitem__(number, handler))
    handlers = {signal.SIGTERM: lambda number, _frame: told.append(number), signal.SIGINT: signal.default_int_handler}
    monkeypatch.setattr(signal, "getsignal", lambda number: handlers[number])
    sent: list[dict] = []
    queue: asyncio.Queue[dict] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    serving = asyncio.ensure_future(lifespan.lifespan({"type": "lifespan"}, queue.get, _append(sent)))
    await asyncio.sleep(0.05)

    assert sent == [{"type": "lifespan.startup.complete"}]
    assert asyncio.get_running_loop() in process_state().sweepers  # no socket needed to start sweeping
    handlers[signal.SIGTERM](signal.SIGTERM, None)  # the server's handler, wrapped
    await asyncio.sleep(0)
    assert process_state().draining and told == [signal.SIGTERM]  # drained first, then the server's own

    await queue.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(serving, SETTLE)
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}
    assert process_state().sweepers[asyncio.get_running_loop()].done()


def _append(sent: list[dict]):
    async def send(message: dict) -> None:
        sent.append(message)

    return send
