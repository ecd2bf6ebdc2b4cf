"""Real server processes on loopback for tests and the benchmark.

`Deployment` prepares a database (a fresh PostgreSQL database, or a SQLite file), runs
the migrations and collectstatic, and starts server processes with the production
settings: `manage.py serve` (uvicorn, the documented production server, with the options of
`docs/deploy.md`) or daphne, chosen by `TEST_ASGI_SERVER` (`uvicorn` by default). `Browser`-less clients sign
up over HTTP like a person, and open WebSockets with the session cookie and the page's Origin.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAPHNE = BIN / "daphne"
PASSWORD = "a-long-test-password-1"
# uvicorn's options for an application other than the product's (the benchmark's references), as
# `manage.py serve` gives them (docs/deploy.md): uvloop and httptools; websockets' sans-I/O protocol;
# no lifespan (those applications have none); the client's address as the socket gives it; daphne's
# 1 MiB frame limit; no per-message compression.
APPLICATION = "chatsite.asgi:application"
UVICORN_OPTIONS = (
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--ws",
    "websockets-sansio",
    "--lifespan",
    "off",
    "--no-proxy-headers",
    "--no-access-log",
    "--ws-max-size",
    "1048576",
    "--ws-per-message-deflate",
    "false",
)
ASGI_SERVERS = ("uvicorn", "daphne")


def asgi_server() -> str:
    """The server the live tests start: `TEST_ASGI_SERVER`, else uvicorn (the production server)."""
    name = os.environ.get("TEST_ASGI_SERVER", "") or "uvicorn"
    if name not in ASGI_SERVERS:
        raise ValueError(f"TEST_ASGI_SERVER must be one of {', '.join(ASGI_SERVERS)}, not {name!r}")
    return name


def server_command(server: str, app: str, port: int) -> list[str]:
    """The command line serving `app` on 127.0.0.1:`port` with `server` (`uvicorn` or `daphne`)."""
    if server == "daphne":
        return [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), app]
    if server == "uvicorn" and app == APPLICATION:  # the production command, as operators start it
        return [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if server == "uvicorn":  # another application (the benchmark's references): the same options
        return [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS]
    raise ValueError(f"unknown ASGI server {server!r}")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_database(base_url: str) -> tuple[str, Callable[[], None]]:
    """Create an empty PostgreSQL database next to `base_url`'s; its URL and a function dropping it."""
    import psycopg

    name = f"agentchat_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    parsed = urlparse(base_url)
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunparse(parsed._replace(path=f"/{name}")), drop


@dataclass
class Session:
    """A logged-in user: an HTTP client holding the session cookie."""

    username: str
    http: httpx.Client

    @property
    def cookie_header(self) -> str:
        """The Cookie header a browser would send."""
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar)

    def new_conversation(self) -> int:
        """Create a new conversation (the API's, with the session cookie: the page's "New chat" reuses a
        blank one, and the benchmark needs as many as it opens); its id."""
        token = self._csrf()["csrfmiddlewaretoken"]
        response = self.http.post("/api/conversations/", headers={"X-CSRFToken": token})
        assert response.status_code == 201, response.text[:500]
        return int(response.json()["id"])

    def _csrf(self) -> dict[str, str]:
        if "csrftoken" not in self.http.cookies:
            self.http.get("/accounts/login/")
        return {"csrfmiddlewaretoken": self.http.cookies["csrftoken"]}


@dataclass
class Server:
    """One server process."""

    port: int
    process: subprocess.Popen
    log_path: Path
    kind: str = "uvicorn"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, conversation_id: int) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/conversations/{conversation_id}/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Deployment:
    """Database, settings and server processes of one test deployment."""

    env: dict[str, str]
    servers: list[Server] = field(default_factory=list)
    _cleanups: list[Callable[[], None]] = field(default_factory=list)
    _workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentchat-")))

    @classmethod
    def create(
        cls,
        *,
        database_url: str | None = None,
        redis_url: str = "",
        tokens_per_second: float = 0,
        extra_env: dict[str, str] | None = None,
    ) -> Deployment:
        """Prepare the database and settings (no server started yet)."""
        deployment = cls(env={})
        if database_url:
            url, drop = postgres_database(database_url)
            deployment._cleanups.append(drop)
        else:
            url = f"sqlite:///{deployment._workdir / 'db.sqlite3'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DJANGO_", "PYTEST"))}
        env.update(
            DJANGO_SETTINGS_MODULE="chatsite.settings",
            DJANGO_SECRET_KEY="live-test-" + uuid.uuid4().hex,
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=url,
            DJANGO_STATIC_ROOT=str(deployment._workdir / "static"),
            REDIS_URL=redis_url,
            OFFLINE_MODEL_TOKENS_PER_SECOND=str(tokens_per_second),
            RUN_HEARTBEAT_SECONDS="0.5",
            RUN_STALE_SECONDS="3",
            RUN_SWEEP_SECONDS="1",
            # Every test signs up and logs in from 127.0.0.1; the throttle's own live test sets its rate.
            LOGIN_RATE_PER_IP="100000/m",
            LOGIN_RATE_PER_ACCOUNT="100000/m",
            SIGNUP_RATE_PER_IP="100000/m",
            RATE_LIMIT_CONVERSATIONS_PER_HOUR="100000",
            AGENT_MODEL_TITLES="0",  # scripted model answers are for the runs; a test may turn it on
            AGENT_DRAIN_SECONDS="5",  # a server stopped mid-answer (a test's end) waits no longer
            LOG_LEVEL="WARNING",
        )
        env.update(extra_env or {})
        deployment.env = env
        try:
            deployment.manage("migrate", "--noinput")
            deployment.manage("collectstatic", "--noinput")
        except BaseException:
            deployment.close()  # the database made above is dropped even when the set-up fails
            raise
        return deployment

    def manage(self, *args: str) -> str:
        """Run a manage.py command with the deployment's settings."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def start_server(
        self,
        *,
        app: str = "chatsite.asgi:application",
        server: str | None = None,
        command: Callable[[int], list[str]] | None = None,
        port: int | None = None,
        **extra_env: str,
    ) -> Server:
        """Start one more server process serving `app` and wait until it answers.

        `server` is `uvicorn` or `daphne` (default: `asgi_server()`); `command`, a function of the
        port's command line, replaces both (the benchmark tries other servers and options). `port`
        (default: a free one) starts it where a stopped process listened, as a restart does.
        """
        kind = server or asgi_server()
        port = port or free_port()
        argv = command(port) if command is not None else server_command(kind, app, port)
        log_path = self._workdir / f"{kind}-{port}.log"
        if log_path.exists():  # a restart on the same port: keep the stopped process's log
            log_path = self._workdir / f"{kind}-{port}-{len(self.servers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Server(port=port, process=process, log_path=log_path, kind=kind)
        self.servers.append(started)
        self._wait_until_up(started)
        return started

    def _wait_until_up(self, server: Server, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.kind} exited:\n{server.log()[-3000:]}")
            try:
                # The product answers /healthz once it serves (readiness, /readyz, may wait on Redis, which
                # some tests stop on purpose); other applications (the benchmark's references) have no
                # /healthz and are up once they serve a page.
                alive = httpx.get(server.http_url + "/healthz", timeout=1).status_code
                login = alive == 404 and httpx.get(server.http_url + "/accounts/login/", timeout=1).status_code
                if alive == 200 or login == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{server.kind} did not start:\n{server.log()[-3000:]}")

    def kill(self, server: Server) -> None:
        """SIGKILL a server process: no clean shutdown."""
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)

    def sign_up(self, server: Server, username: str | None = None) -> Session:
        """Sign up through the page, like a newcomer; the logged-in session."""
        return sign_up_with(httpx.Client(base_url=server.http_url, timeout=10, follow_redirects=False), username)

    def create_users(self, count: int, prefix: str = "load") -> list[dict[str, Any]]:
        """Users with a logged-in session and one conversation each, made directly (no password hashing)."""
        script = f"""
import json, uuid
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from conversations.models import Conversation
tag = uuid.uuid4().hex[:6]
made = []
for n in range({count}):
    user = get_user_model().objects.create_user(f"{prefix}{{n}}_{{tag}}")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    conversation = Conversation.objects.create(owner=user)
    made.append({{"username": user.username, "session": session.session_key, "conversation": conversation.pk}})
print(json.dumps(made))
"""
        return json.loads(self.manage("shell", "-c", script).strip().splitlines()[-1])

    def query(self, sql: str, *params: Any) -> list[tuple]:
        """Read the deployment's database directly (to check what is stored)."""
        url = self.env["DATABASE_URL"]
        if url.startswith("sqlite"):
            import sqlite3

            with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(url) as conn:
            return conn.execute(sql, params).fetchall()

    def stop_server(self, server: Server) -> None:
        """SIGTERM one server (SIGKILL after 10 s)."""
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)

    def close(self) -> None:
        """Stop every server, drop the database and remove the working directory."""
        for server in self.servers:
            self.stop_server(server)
        for cleanup in self._cleanups:
            cleanup()
        shutil.rmtree(self._workdir, ignore_errors=True)


def sign_up_with(http: httpx.Client, username: str | None = None) -> Session:
    """Sign up through the sign-up page that `http` reaches (a server, or the proxy in front of it)."""
    username = username or f"user{uuid.uuid4().hex[:8]}"
    http.get("/accounts/signup/")
    response = http.post(
        "/accounts/signup/",
        data={
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
            "username": username,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.text[:2000]
    return Session(username=username, http=http)


def ws_headers(session: Session, server: Server) -> dict[str, str]:
    """The headers a browser tab of `session` sends when it opens the conversation socket."""
    return {"Cookie": session.cookie_header, "Origin": server.http_url}


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame)
