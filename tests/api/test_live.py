"""The API against a real daphne process: a token made on the account page, `curl -N` as in docs/api.md,
and a client that hangs up mid-run (Django cancels the response; the run goes on)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import Deployment, Server, Session
from tests.support.answers import ANSWER_TIMEOUT, finished_answer
from tests.support.api import parse_sse
from tests.support.deployments import live_deployment
from tests.support.waits import wait_until

CURL = shutil.which("curl")
NEW_TOKEN = re.compile(r'data-testid="new-token-value">([^<]+)<')


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with live_deployment(tokens_per_second=200, extra_env={"API_SSE_KEEPALIVE_SECONDS": "0.5"}) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Server:
    return deployment.start_server()


@pytest.fixture(scope="module")
def session(deployment: Deployment, server: Server) -> Session:
    return deployment.sign_up(server)


@pytest.fixture(scope="module")
def token(session: Session) -> str:
    """A token created like a person does: on the account page, with the scopes it offers (read, send)."""
    page = session.http.get("/account/tokens/")
    assert page.status_code == 200
    created = session.http.post(
        "/account/tokens/",
        data={"name": "curl", "scopes": ["send"], "csrfmiddlewaretoken": session.http.cookies["csrftoken"]},
    )
    match = NEW_TOKEN.search(created.text)
    assert match, created.text[:2000]
    return match.group(1)


def curl(*args: str) -> str:
    if CURL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is required under CI=true")
        pytest.skip("curl is not installed")
    result = subprocess.run([CURL, "-sS", "-N", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_curl_streams_a_run_as_documented(server: Server, token: str, deployment: Deployment) -> None:
    auth = f"Authorization: Bearer {token}"
    created = json.loads(curl("-X", "POST", "-H", auth, f"{server.http_url}/api/conversations/"))
    conversation_id = created["id"]

    body = json.dumps({"content": "What is 10 + 10?", "client_id": "curl-1"})
    output = curl(
        "-X", "POST", "-H", auth, "-H", "Content-Type: application/json", "-d", body,
        f"{server.http_url}/api/conversations/{conversation_id}/messages",
    )  # fmt: skip

    events, _ = parse_sse(output)
    assert events[0].event == "run_started" and events[-1].event == "done"
    assert [e.id for e in events] == [f"{e.data['run_id']}:{e.data['seq']}" for e in events]
    assert [e.data["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e.data["name"] for e in events if e.event == "tool_start"] == ["add"]
    assert [e.data["output"] for e in events if e.event == "tool_result"] == [20]
    assert events[-1].data["status"] == "completed"

    stored = json.loads(curl("-H", auth, f"{server.http_url}/api/conversations/{conversation_id}"))
    assert stored["messages"][-1]["content"] == next(e.data["content"] for e in events if e.event == "final")
    schema = json.loads(curl(f"{server.http_url}/api/schema"))
    assert "/api/conversations/{conversation_id}/stream" in schema["paths"]


def test_a_client_that_hangs_up_mid_run_does_not_stop_it(server: Server, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.http_url, headers=headers, timeout=10) as http:
        conversation_id = http.post("/api/conversations/").json()["id"]
        body = {"content": "count to 200", "client_id": "hang-up"}
        with http.stream("POST", f"/api/conversations/{conversation_id}/messages", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            received = ""
            for chunk in response.iter_text():
                received += chunk
                if '"text":"' in received:
                    break  # leaving the block closes the connection mid-run

        answer = _wait_for_answer(http, conversation_id)
    assert answer["status"] == "completed"
    assert "200" in answer["content"]
    assert "Traceback" not in server.log()


def test_a_bad_token_is_refused_over_the_wire(server: Server) -> None:
    response = httpx.get(f"{server.http_url}/api/conversations/", headers={"Authorization": "Bearer acht_nope"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def _wait_for_answer(http: httpx.Client, conversation_id: int) -> dict:
    return wait_until(
        lambda: finished_answer(http.get(f"/api/conversations/{conversation_id}").json()["messages"]),
        timeout=ANSWER_TIMEOUT,
        interval=0.1,
        message=f"the answer of conversation {conversation_id} is stored",
    )
