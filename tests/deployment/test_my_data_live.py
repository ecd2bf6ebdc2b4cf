"""My data on a real `manage.py serve` (PostgreSQL, Redis): a newcomer asks through a WebSocket tab,
downloads the zip and finds the answer in it; then deletes the account through the page while a tab
streams an answer: the tab closes, no row of theirs is left in any table, and the old session cookie
opens nothing."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import date

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.live_server import PASSWORD, Deployment, Server, Session
from tests.live_tabs import LiveTab
from tests.services import require_postgres, require_redis
from tests.support.deployments import live_deployment

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]

QUESTION = "What is 12 times 34?"
ANSWER_HOLDS = "408"
LONG_QUESTION = "count to 400"


@pytest.fixture(scope="module")
def deployment():
    with live_deployment(database_url=require_postgres(), redis_url=require_redis(), tokens_per_second=40) as made:
        yield made


def csrf(session: Session, page: str) -> str:
    response = session.http.get(page)
    assert response.status_code == 200, response.text[:500]
    return session.http.cookies["csrftoken"]


def rows_referencing_user(deployment: Deployment, user_id: int) -> dict[str, int]:
    """Rows holding `user_id` in any column with a foreign key to auth_user (found in the catalog)."""
    columns = deployment.query(
        """
        SELECT cl.relname, att.attname
        FROM pg_constraint con
        JOIN pg_class cl ON cl.oid = con.conrelid
        JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY(con.conkey)
        WHERE con.contype = 'f' AND con.confrelid = 'auth_user'::regclass
        """
    )
    assert ("conversations_conversation", "owner_id") in columns and ("api_apitoken", "user_id") in columns
    found = {}
    for table, column in columns:
        count = deployment.query(f'SELECT count(*) FROM "{table}" WHERE "{column}" = %s', user_id)[0][0]
        if count:
            found[f"{table}.{column}"] = count
    return found


async def answered(server: Server, session: Session, conversation: int) -> str:
    tab = await LiveTab.open(server, session, conversation)
    await tab.ask(QUESTION)
    text, _ = await tab.answer_like_the_page()
    await tab.close()
    return text


async def test_download_then_delete_the_account_with_a_tab_open(deployment):
    server = deployment.start_server()
    session = deployment.sign_up(server)
    user_id = deployment.query("SELECT id FROM auth_user WHERE username = %s", session.username)[0][0]
    conversation = session.new_conversation()
    answer = await answered(server, session, conversation)
    assert ANSWER_HOLDS in answer
    stored = deployment.query("SELECT content FROM conversations_message WHERE role = 'assistant'")
    assert [row[0] for row in stored] == [answer]

    # The download: a page, then the zip.
    page = session.http.get("/accounts/export/")
    assert page.status_code == 200 and "What the download holds" in page.text
    token = session.http.cookies["csrftoken"]
    response = session.http.post("/accounts/export/", data={"csrfmiddlewaretoken": token})
    assert response.status_code == 200, response.text[:500]
    filename = f"agentchat-{session.username}-{date.today().isoformat()}.zip"
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    [json_name] = [n for n in archive.namelist() if n.startswith("conversations/") and n.endswith(".json")]
    data = json.loads(archive.read(json_name))
    assert [m["content"] for m in data["messages"]] == [QUESTION, answer]
    assert answer in archive.read(json_name[:-5] + ".md").decode()
    assert json.loads(archive.read("profile.json"))["username"] == session.username
    hashed = deployment.query("SELECT password FROM auth_user WHERE id = %s", user_id)[0][0]
    assert all(hashed.encode() not in archive.read(name) for name in archive.namelist())

    # A second conversation streams a long answer in an open tab while the account is deleted.
    streaming = session.new_conversation()
    tab = await LiveTab.open(server, session, streaming)
    await tab.ask(LONG_QUESTION)
    await tab.receive_until(lambda f: f.get("type") == "token")
    old_cookie = session.cookie_header

    wrong = session.http.post("/accounts/delete/", data={"csrfmiddlewaretoken": token, "password": "not it"})
    assert wrong.status_code == 400 and "Nothing was deleted" in wrong.text
    assert deployment.query("SELECT count(*) FROM conversations_conversation WHERE owner_id = %s", user_id) == [(2,)]

    token = csrf(session, "/accounts/delete/")
    deleted = session.http.post("/accounts/delete/", data={"csrfmiddlewaretoken": token, "password": PASSWORD})
    assert deleted.status_code == 302 and deleted.headers["location"] == "/accounts/login/"
    login_page = session.http.get("/accounts/login/")
    assert "Your account and everything in it was deleted." in login_page.text

    # The tab is closed (the conversation's deletion tells it: 4404).
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(tab.receive_until(lambda f: False), 15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404

    # No row of theirs anywhere.
    assert deployment.query("SELECT count(*) FROM auth_user WHERE id = %s", user_id) == [(0,)]
    assert rows_referencing_user(deployment, user_id) == {}
    assert deployment.query("SELECT count(*) FROM conversations_message") == [(0,)]
    assert deployment.query("SELECT count(*) FROM conversations_toolapproval") == [(0,)]
    sessions = deployment.query("SELECT count(*) FROM django_session WHERE session_key = %s", old_session(old_cookie))
    assert sessions == [(0,)]

    # The old cookie opens nothing.
    async with httpx.AsyncClient(base_url=server.http_url, headers={"Cookie": old_cookie}, timeout=10) as stale:
        home = await stale.get("/")
        assert home.status_code == 302 and home.headers["location"].startswith("/accounts/login/")
        assert (await stale.get("/accounts/export/")).status_code == 302
        assert (await stale.get("/api/conversations/")).status_code in (401, 403)
    log = server.log()
    assert "Traceback" not in log, log[-3000:]


def old_session(cookie_header: str) -> str:
    return dict(part.split("=", 1) for part in cookie_header.split("; "))["sessionid"]
