"""Limits that hold under concurrency on real databases, and sync floods against a real daphne process."""

from __future__ import annotations

import asyncio
import json

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.live_tabs import LiveTab
from tests.services import require_postgres
from tests.support.deployments import live_deployment

SENDS_AT_ONCE = """
import json, threading
from django.contrib.auth import get_user_model
from django.db import close_old_connections
from conversations.models import Conversation, Message
from conversations.services import RateLimited, SendLimits, turn_start
user = get_user_model().objects.create_user("racer")
conversations = [Conversation.objects.create(owner=user) for _ in range(20)]
limits = SendLimits(messages_per_minute=1000, concurrent_runs=3)
barrier = threading.Barrier(20)
outcomes = []
def send(conversation):
    barrier.wait()
    try:
        turn_start(conversation=conversation, content="hi", client_id="c", run_id=f"r{conversation.pk}",
                   model="m", worker="w", limits=limits)
        outcomes.append("started")
    except RateLimited:
        outcomes.append("limited")
    except Exception as error:
        outcomes.append(type(error).__name__ + ": " + str(error))
    finally:
        close_old_connections()
threads = [threading.Thread(target=send, args=(c,)) for c in conversations]
[t.start() for t in threads]
[t.join(60) for t in threads]
print(json.dumps({"outcomes": sorted(outcomes), "generating": Message.objects.filter(status="generating").count()}))
"""


@pytest.fixture(params=["sqlite", "postgres"])
def database(request):
    url = require_postgres() if request.param == "postgres" else None
    with live_deployment(database_url=url) as deployment:
        yield deployment


def test_twenty_sends_at_once_with_a_limit_of_three_start_exactly_three(database):
    result = json.loads(database.manage("shell", "-c", SENDS_AT_ONCE).strip().splitlines()[-1])

    assert result["outcomes"] == ["limited"] * 17 + ["started"] * 3
    assert result["generating"] == 3


FIFTY_MESSAGES = """
from conversations.models import Conversation
from tests.messages import message_append
conversation = Conversation.objects.get(pk={pk})
for n in range(50):
    message_append(conversation, role="user" if n % 2 == 0 else "assistant", content="x" * 2000)
"""


@pytest.mark.asyncio
async def test_three_hundred_unread_syncs_barely_grow_the_server_and_close_the_socket():
    with live_deployment() as deployment:
        server = deployment.start_server()
        session = deployment.sign_up(server)
        conversation_id = session.new_conversation()
        deployment.manage("shell", "-c", FIFTY_MESSAGES.format(pk=conversation_id))
        process = psutil.Process(server.process.pid)
        before = process.memory_info().rss
        headers = {"Cookie": session.cookie_header, "Origin": server.http_url}
        async with connect(server.ws_url(conversation_id), additional_headers=headers, max_queue=1) as flood:
            closed_with = None
            try:
                for _ in range(300):
                    await flood.send(json.dumps({"type": "sync"}))
                await asyncio.sleep(3)  # unread meanwhile
                while True:
                    await asyncio.wait_for(flood.recv(), 5)
            except ConnectionClosed as closed:
                closed_with = closed.rcvd.code if closed.rcvd else None
        grown = (process.memory_info().rss - before) / 2**20
        print(json.dumps({"rss_growth_mib": round(grown, 1)}))
        assert grown < 20
        assert closed_with == 4429
        tab = await LiveTab.open(server, session, conversation_id)  # the server serves on
        assert len(tab.snapshot["messages"]) == 50
        await tab.close()
