"""Backup and restore, as docs/deploy.md ("Backup", "Restore") tells an operator to do them, on PostgreSQL.

Users sign up and ask questions through a real `manage.py serve` (answers with tool steps, a
regenerated answer, feedback, a rename, an API token); `pg_dump --format=custom` copies the database
while the server serves; `createdb` and `pg_restore --no-owner` make a fresh database, and a server
started on it, without the old Redis (it holds nothing that needs a backup), gives back every
conversation with identical messages, over HTTP and row by row; a user logs in with their password
and asks a new question; `manage.py migrate --check` passes. The restored database is dropped at the
end, also when the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.live_server import PASSWORD, Deployment, Server, Session
from tests.services import missing, require_postgres, require_redis
from tests.support.answers import finished_answer
from tests.support.api import parse_sse
from tests.support.deployments import live_deployment
from tests.support.waits import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

QUESTIONS = {
    "alice": ["What is 12 times 7?", "What is (3 + 4) * 2 ^ 3?"],
    "bob": ["what is 7 times 6 minus 2", "count to 5"],
}
RUN_TIMEOUT = 60


def pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not on PATH (PostgreSQL's client programs)")
    return path


def pg_connection(url: str) -> tuple[list[str], dict[str, str]]:
    """The client programs' connection options for a database URL, and the environment (password)."""
    parts = urlsplit(url)
    options = ["--host", parts.hostname or "127.0.0.1", "--port", str(parts.port or 5432)]
    if parts.username:
        options += ["--username", parts.username]
    env = {**os.environ, **({"PGPASSWORD": parts.password} if parts.password else {})}
    return options, env


def run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr[-3000:]}"


def csrf(session: Session) -> dict[str, str]:
    if "csrftoken" not in session.http.cookies:
        session.http.get("/accounts/login/")
    return {"X-CSRFToken": session.http.cookies["csrftoken"]}


def ask(session: Session, conversation_id: int, content: str, client_id: str) -> None:
    """Ask through the API with the session (as the page's fetches do) and read the events to `done`."""
    response = session.http.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": content, "client_id": client_id},
        headers=csrf(session),
        timeout=RUN_TIMEOUT,
    )
    assert response.status_code == 200, response.text[:2000]
    events, _ = parse_sse(response.text)
    assert events[-1].event == "done" and events[-1].data["status"] == "completed", events[-1]
    wait_until(lambda: finished_answer(read(session, conversation_id)["messages"]), timeout=RUN_TIMEOUT)


def read(session: Session, conversation_id: int) -> dict[str, Any]:
    response = session.http.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text[:2000]
    return response.json()


def log_in(server: Server, username: str, password: str) -> tuple[int, Session]:
    """Log in through the login page; its status (302 when it worked) and the session."""
    http = httpx.Client(base_url=server.http_url, timeout=10, follow_redirects=False)
    http.get("/accounts/login/")
    form = {"csrfmiddlewaretoken": http.cookies["csrftoken"], "username": username, "password": password}
    return http.post("/accounts/login/", data=form).status_code, Session(username=username, http=http)


def every_row(deployment: Deployment) -> dict[str, list[tuple]]:
    """Every row of every table of the product's schema, by primary key, and every sequence's position."""
    tables = deployment.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE' ORDER BY table_name"
    )
    rows = {name: deployment.query(f'SELECT * FROM "{name}" ORDER BY 1') for (name,) in tables}
    rows["(sequences)"] = deployment.query("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1")
    return rows


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    with live_deployment(database_url=require_postgres(), redis_url=require_redis()) as deployment:
        yield deployment


@pytest.fixture
def restored(deployment: Deployment) -> Iterator[Deployment]:
    """A deployment like `deployment` on a database of its own, `<name>_restored` (created by the test
    with `createdb`), and without Redis: nothing of the old one is needed. Its servers are stopped and
    its database dropped afterwards, whatever happened."""
    source = deployment.env["DATABASE_URL"]
    parts = urlsplit(source)
    url = urlunsplit(parts._replace(path=parts.path + "_restored"))
    copy = Deployment(env={**deployment.env, "DATABASE_URL": url, "REDIS_URL": ""})
    options, env = pg_connection(url)
    dropdb = pg_tool("dropdb")
    try:
        yield copy
    finally:
        copy.close()
        run([dropdb, *options, "--if-exists", "--force", urlsplit(url).path.lstrip("/")], env)


def test_a_dump_restored_into_a_fresh_database_serves_every_conversation_as_it_was(
    deployment: Deployment, restored: Deployment, tmp_path: Path
) -> None:
    pg_dump, createdb, pg_restore = pg_tool("pg_dump"), pg_tool("createdb"), pg_tool("pg_restore")
    server = deployment.start_server()

    # People use the product: answers with tool steps, a regenerated answer, feedback, a rename, a token.
    sessions = {name: deployment.sign_up(server, name) for name in QUESTIONS}
    conversations: dict[str, list[int]] = {}
    for name, questions in QUESTIONS.items():
        session = sessions[name]
        conversations[name] = []
        for n, question in enumerate(questions):
            conversation_id = session.new_conversation()
            ask(session, conversation_id, question, client_id=f"{name}-{n}")
            conversations[name].append(conversation_id)
    alice, alices_first = sessions["alice"], conversations["alice"][0]
    regenerated = alice.http.post(
        f"/api/conversations/{alices_first}/regenerate", json={"client_id": "again"}, headers=csrf(alice)
    )
    assert regenerated.status_code == 200 and parse_sse(regenerated.text)[0][-1].event == "done"
    wait_until(lambda: finished_answer(read(alice, alices_first)["messages"]), timeout=RUN_TIMEOUT)
    answer = read(alice, alices_first)["messages"][-1]
    assert len(answer["versions"]) == 2
    rated = alice.http.post(
        f"/api/messages/{answer['id']}/feedback", json={"rating": -1, "comment": "Too terse."}, headers=csrf(alice)
    )
    assert rated.status_code == 200, rated.text
    renamed = alice.http.patch(f"/api/conversations/{alices_first}", json={"title": "Times"}, headers=csrf(alice))
    assert renamed.status_code == 200
    made = alice.http.post(
        "/account/tokens/",
        data={"name": "laptop", "scopes": ["send"], "csrfmiddlewaretoken": csrf(alice)["X-CSRFToken"]},
    )
    assert made.status_code == 200
    with_tools = deployment.query(
        "SELECT count(*) FROM conversations_message WHERE role = 'assistant' AND tool_steps::text <> '[]'"
    )
    assert with_tools[0][0] >= 3, "the offline model answered the arithmetic with its tools"
    before = {cid: read(sessions[name], cid) for name, ids in conversations.items() for cid in ids}
    listed = {name: sessions[name].http.get("/api/conversations/").json() for name in QUESTIONS}
    rows_before = every_row(deployment)

    # The backup, taken while the server serves.
    source = deployment.env["DATABASE_URL"]
    options, env = pg_connection(source)
    dump = tmp_path / "agentchat.dump"
    run([pg_dump, "--format=custom", "--file", str(dump), *options, urlsplit(source).path.lstrip("/")], env)
    deployment.stop_server(server)

    # The restore, into a fresh database, and a server on it.
    target = restored.env["DATABASE_URL"]
    name = urlsplit(target).path.lstrip("/")
    run([createdb, *options, name], env)
    run([pg_restore, "--no-owner", "--exit-on-error", *options, "--dbname", name, str(dump)], env)
    assert every_row(restored) == rows_before, "the restored database holds every row, and the sequences"
    restored.manage("migrate", "--check")
    back = restored.start_server()

    # Every conversation reads back as it was, to each of its owners logging in with their password.
    assert log_in(back, "alice", "not-her-password")[0] == 200, "a wrong password is refused"
    again: dict[str, Session] = {}
    for name in QUESTIONS:
        status, again[name] = log_in(back, name, PASSWORD)
        assert status == 302, f"{name} logs in on the restored database"
        assert again[name].http.get("/api/conversations/").json() == listed[name]
        for conversation_id in conversations[name]:
            assert read(again[name], conversation_id) == before[conversation_id]

    # And goes on: a new question in her first conversation, and a new conversation.
    ask(again["alice"], alices_first, "What is 6 times 7?", client_id="after-restore")
    after = read(again["alice"], alices_first)["messages"]
    assert after[:-2] == before[alices_first]["messages"]
    assert after[-2]["content"] == "What is 6 times 7?" and after[-2]["parent_id"] == after[-3]["id"]
    assert after[-1]["status"] == "completed" and "42" in after[-1]["content"]
    newest = again["bob"].new_conversation()
    assert newest > max(max(ids) for ids in conversations.values())
    ask(again["bob"], newest, "What is 2 + 2?", client_id="bob-after")
    assert read(again["bob"], newest)["messages"][-1]["status"] == "completed"
