"""A flood of `branch` frames against a real daphne process: it shares `sync`'s budget and is closed (4429)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from tests.live_tabs import LiveTab
from tests.support.deployments import live_deployment

pytestmark = pytest.mark.asyncio

BUDGET = 10

TWO_VERSIONS = """
from conversations.models import Conversation, Message
from tests.messages import message_append
conversation = Conversation.objects.get(pk={pk})
question = message_append(conversation, role="user", content="What is 2 + 2?", client_id="q1")
first = message_append(conversation, role="assistant", content="4")
second = message_append(conversation, role="assistant", content="Four")
Message.objects.filter(pk=second.pk).update(parent=question)
print(first.pk, second.pk)
"""


async def test_a_twenty_frame_branch_flood_is_closed_with_4429():
    with live_deployment(extra_env={"SYNC_MAX_PER_MINUTE": str(BUDGET)}) as deployment:
        server = deployment.start_server()
        session = deployment.sign_up(server)
        conversation_id = session.new_conversation()
        output = deployment.manage("shell", "-c", TWO_VERSIONS.format(pk=conversation_id))
        versions = [int(pk) for pk in output.strip().splitlines()[-1].split()]
        flood = await LiveTab.open(server, session, conversation_id)

        received, closed_with = [], None
        try:
            for n in range(20):
                await flood.send({"type": "branch", "message_id": versions[n % 2]})
            while True:
                received.append(json.loads(await asyncio.wait_for(flood.connection.recv(), 5)))
        except ConnectionClosed as closed:
            closed_with = closed.rcvd.code if closed.rcvd else None

        assert closed_with == 4429
        # Past the budget's ten frames the socket is closed: the ten shared an interval's turn, or two.
        assert len([f for f in received if f["type"] == "snapshot"]) <= 2
        tab = await LiveTab.open(server, session, conversation_id)  # the server serves on
        assert [m["content"] for m in tab.snapshot["messages"]][-1] in ("4", "Four")
        await tab.close()
