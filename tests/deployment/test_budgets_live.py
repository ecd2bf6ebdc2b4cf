"""Token budgets on real databases and a real server: sends at the same moment never promise more than
the budget, and once it is spent the socket, the API and `manage.py ask` all refuse `quota_exceeded`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import httpx
import pytest

from tests.live_server import ROOT
from tests.live_tabs import LiveTab
from tests.services import require_postgres
from tests.support.deployments import live_deployment

SENDS_AT_ONCE = """
import json, threading
from django.contrib.auth import get_user_model
from django.db import close_old_connections
from conversations.budgets import QuotaExceeded
from conversations.models import Conversation, Message
from conversations.services import SendLimits, turn_start
user = get_user_model().objects.create_user("racer")
spent = Conversation.objects.create(owner=user)
Message.objects.create(conversation=spent, role="assistant", usage={"input_tokens": 600, "output_tokens": 50})
conversations = [Conversation.objects.create(owner=user) for _ in range(20)]
limits = SendLimits(messages_per_minute=1000, concurrent_runs=1000)
barrier = threading.Barrier(20)
outcomes = []
def send(conversation):
    barrier.wait()
    try:
        turn_start(conversation=conversation, content="hi", client_id="c", run_id=f"r{conversation.pk}",
                   model="m", worker="w", limits=limits)
        outcomes.append("started")
    except QuotaExceeded:
        outcomes.append("quota_exceeded")
    except Exception as error:
        outcomes.append(type(error).__name__ + ": " + str(error))
    finally:
        close_old_connections()
threads = [threading.Thread(target=send, args=(c,)) for c in conversations]
[t.start() for t in threads]
[t.join(60) for t in threads]
print(json.dumps({"outcomes": sorted(outcomes), "generating": Message.objects.filter(status="generating").count()}))
"""

BUDGET_ENV = {"QUOTA_TOKENS_PER_DAY": "1000", "QUOTA_RUN_RESERVE_TOKENS": "100"}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request):
    url = require_postgres() if request.param == "postgres" else None
    with live_deployment(database_url=url, extra_env=BUDGET_ENV) as deployment:
        yield deployment


def test_twenty_sends_at_once_start_only_what_the_budget_holds(database):
    """650 of 1,000 tokens spent, 100 held per answer being written: room for exactly three more."""
    result = json.loads(database.manage("shell", "-c", SENDS_AT_ONCE).strip().splitlines()[-1])

    assert result["outcomes"] == ["quota_exceeded"] * 17 + ["started"] * 3
    assert result["generating"] == 3


# Each answer of the offline model to "What is 1 + 1?" spends about 200 tokens: a reserve of 250
# covers it, so at most four of 1,000 may be under way, and what they spend stays within the budget.
SERVED_ENV = {
    "QUOTA_TOKENS_PER_DAY": "1000",
    "QUOTA_RUN_RESERVE_TOKENS": "250",
    "RATE_LIMIT_MESSAGES_PER_MINUTE": "1000",
    "RATE_LIMIT_CONCURRENT_RUNS": "1000",
}


@pytest.mark.asyncio
async def test_a_spent_budget_refuses_on_the_socket_the_api_and_the_command_and_is_never_overrun():
    with live_deployment(database_url=require_postgres(), tokens_per_second=100, extra_env=SERVED_ENV) as deployment:
        server = deployment.start_server()
        session = deployment.sign_up(server)
        conversations = [session.new_conversation() for _ in range(20)]
        csrf = session.http.cookies["csrftoken"]
        headers = {"Cookie": session.cookie_header, "X-CSRFToken": csrf, "Origin": server.http_url}

        async with httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=60) as http:

            async def send(conversation_id: int, client_id: str) -> tuple[int, str]:
                body = {"content": "What is 1 + 1?", "client_id": client_id}
                async with http.stream("POST", f"/api/conversations/{conversation_id}/messages", json=body) as answer:
                    text = (await answer.aread()).decode()
                    return answer.status_code, text

            outcomes = await asyncio.gather(*(send(c, f"at-once-{c}") for c in conversations))
            started = [text for status, text in outcomes if status == 200]
            refused = [json.loads(text)["error"]["code"] for status, text in outcomes if status == 429]
            assert len(started) == 4 and refused == ["quota_exceeded"] * 16, outcomes
            done = re.compile(r'\ndata: \{"type":"done",[^\n]*"status":"completed"\}')
            assert all(done.search(text) for text in started), started

            spent = deployment.query(
                "SELECT SUM(CAST(usage->>'input_tokens' AS bigint) + CAST(usage->>'output_tokens' AS bigint)) "
                "FROM conversations_message WHERE role = 'assistant'"
            )[0][0]
            assert 4 * 150 <= spent <= 1000

            me = (await http.get("/api/me")).json()["budget"]["day"]
            assert (me["used"], me["limit"], me["remaining"]) == (spent, 1000, 1000 - spent)

            status, text = await send(conversations[0], "after")  # 4 answers spent ~800: no room for 250
            assert status == 429
            assert json.loads(text)["error"]["code"] == "quota_exceeded"

        tab = await LiveTab.open(server, session, conversations[1])
        await tab.send({"type": "send", "content": "What is 2 + 2?", "client_id": "from-the-page"})
        error = await tab.receive()
        await tab.connection.close()
        assert (error["type"], error["code"], error["client_id"]) == ("error", "quota_exceeded", "from-the-page")
        assert error["retry_after"] > 5  # spent: it renews at midnight UTC, not when answers end

        command = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "manage.py", "ask", "What is 3 + 3?", "--user", session.username],
            cwd=ROOT,
            env=deployment.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert command.returncode != 0
        assert "quota_exceeded" in command.stderr
