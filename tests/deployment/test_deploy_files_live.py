"""The shipped deployment files, exercised: `deploy/nginx/agentchat.conf` in front of two `manage.py serve`
processes on PostgreSQL and Redis, and the service units of `deploy/systemd/`.

nginx runs the shipped site config, changed only in what a test machine must change (listen ports,
upstream ports, certificate paths, server name, log paths: `site_config_for_this_machine`, which fails
if a line it changes is no longer in the file), with a self-signed certificate. Through it, over TLS: a
rolling restart of both processes while an answer streams to a tab, the event streams unbuffered, the
WebSocket upgrade, the port-80 redirect and health checks, /metrics refused, the body limit, the request
id. The units are checked by `systemd-analyze verify` and by running their commands on this checkout.

The model is `tests.fake_openai`: it can hold an answer half-way, so that "the stream is not buffered"
is a fact the test waits for, not a race.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.fake_openai import FakeOpenAI, StreamResponse, content_chunks
from tests.live_server import Deployment, Server, Session, free_port, sign_up_with
from tests.live_tabs import LiveTab
from tests.services import missing, require_postgres, require_redis
from tests.support.deployments import live_deployment
from tests.support.waits import eventually, wait_until

ROOT = Path(__file__).resolve().parents[2]
SITE_CONFIG = ROOT / "deploy" / "nginx" / "agentchat.conf"
UNITS = ROOT / "deploy" / "systemd"
ENV_EXAMPLE = ROOT / ".env.example"
NGINX = os.environ.get("NGINX_PATH", "/usr/sbin/nginx")
SITE_HOST = "127.0.0.1"
NEW_TOKEN = re.compile(r'data-testid="new-token-value">([^<]+)<')
READY_PATH = "/readyz"
"""What a rolling restart waits for on a new process, and a load balancer probes."""


# --- services this module needs --------------------------------------------------------------------


def require_nginx() -> str:
    """The nginx binary, or skip (fail under CI=true) when it is not installed."""
    path = NGINX if os.path.exists(NGINX) else shutil.which("nginx")
    if path is None:
        missing(f"nginx is not installed at {NGINX} (apt-get install nginx)")
    return path


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (apt-get install {package})")
    return path


# --- nginx with the shipped site config -----------------------------------------------------------


def site_config_for_this_machine(
    shipped: str, *, upstream_ports: tuple[int, int], http_port: int, https_port: int, directory: Path
) -> str:
    """The shipped site config with what a test machine must change, changed; AssertionError if a line to
    change is not (or no longer) in the file as expected, so that the test keeps testing the shipped file.

    Changed: the two upstream servers' ports (to the test's processes), the listen ports (80 and 443 to
    free ports on loopback; the IPv6 listens dropped: a test listens on loopback only), the certificate
    and key (a self-signed pair), the server name (this machine's address) and the log paths.
    """
    changes = [
        (r"^(\s*server 127\.0\.0\.1:)8001(\s.*;|;)$", rf"\g<1>{upstream_ports[0]}\g<2>", 1),
        (r"^(\s*server 127\.0\.0\.1:)8002(\s.*;|;)$", rf"\g<1>{upstream_ports[1]}\g<2>", 1),
        (r"^(\s*)listen 80;$", rf"\g<1>listen 127.0.0.1:{http_port};", 1),
        (r"^(\s*)listen 443 ssl http2;$", rf"\g<1>listen 127.0.0.1:{https_port} ssl http2;", 1),
        (r"^(\s*)listen \[::\]:80;$", r"\g<1># (IPv6 listen dropped for the test)", 1),
        (r"^(\s*)listen \[::\]:443 ssl http2;$", r"\g<1># (IPv6 listen dropped for the test)", 1),
        (r"^(\s*)server_name chat\.example\.com;$", rf"\g<1>server_name {SITE_HOST};", 2),
        (
            r"^(\s*)ssl_certificate /etc/ssl/agentchat/fullchain\.pem;$",
            rf"\g<1>ssl_certificate {directory}/fullchain.pem;",
            1,
        ),
        (
            r"^(\s*)ssl_certificate_key /etc/ssl/agentchat/privkey\.pem;$",
            rf"\g<1>ssl_certificate_key {directory}/privkey.pem;",
            1,
        ),
        (
            r"^(\s*)access_log /var/log/nginx/agentchat\.access\.log agentchat;$",
            rf"\g<1>access_log {directory}/access.log agentchat;",
            2,
        ),
        (
            r"^(\s*)error_log /var/log/nginx/agentchat\.error\.log;$",
            rf"\g<1>error_log {directory}/error.log info;",
            2,
        ),
    ]
    text = shipped
    for pattern, replacement, expected in changes:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == expected, (
            f"{SITE_CONFIG.relative_to(ROOT)}: expected {expected} line(s) matching {pattern!r}, found {count}; "
            "the test changes only these lines for a test machine: update it with the file"
        )
    return text


MAIN_CONFIG = """\
# The test's main nginx.conf: everything under {directory}; the shipped site config included as is.
{user}
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {directory}/temp/body;
    proxy_temp_path {directory}/temp/proxy;
    fastcgi_temp_path {directory}/temp/fastcgi;
    uwsgi_temp_path {directory}/temp/uwsgi;
    scgi_temp_path {directory}/temp/scgi;
    include {directory}/agentchat.conf;
}}
"""


def worker_user() -> str:
    """Run as root, nginx's workers drop to `nobody`; its group's name differs between systems."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"


def self_signed_certificate(directory: Path) -> None:
    """fullchain.pem and privkey.pem for 127.0.0.1 (and localhost), valid two days."""
    openssl = require_tool("openssl", "openssl")
    result = subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", f"/CN={SITE_HOST}", "-addext", f"subjectAltName=IP:{SITE_HOST},DNS:localhost",
            "-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem"),
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@dataclass
class Site:
    """nginx serving the shipped site config: port 80's stand-in `http_port`, 443's `https_port`."""

    directory: Path
    http_port: int
    https_port: int
    tls: ssl.SSLContext
    process: subprocess.Popen | None = None

    @property
    def https_url(self) -> str:
        return f"https://{SITE_HOST}:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://{SITE_HOST}:{self.http_port}"

    def ws_url(self, conversation_id: int) -> str:
        return f"wss://{SITE_HOST}:{self.https_port}/ws/conversations/{conversation_id}/"

    def access_log(self) -> str:
        path = self.directory / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def client(self, **options: Any) -> httpx.Client:
        """An HTTPS client to the site, sending the page's Origin as a browser does on a POST."""
        return httpx.Client(
            base_url=self.https_url, verify=self.tls, timeout=10, headers={"Origin": self.https_url}, **options
        )

    def async_client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.https_url, verify=self.tls, headers={"Origin": self.https_url}, **options
        )


@contextlib.contextmanager
def nginx_site(upstream_ports: tuple[int, int], http_port: int, https_port: int) -> Iterator[Site]:
    """nginx in the foreground on loopback; stopped, and its directory removed, on the way out."""
    nginx = require_nginx()
    directory = Path(tempfile.mkdtemp(prefix="agentchat-nginx-"))
    directory.chmod(0o755)  # run as root, nginx's workers (nobody) reach their temp paths through it
    (directory / "temp").mkdir()
    site: Site | None = None
    try:
        self_signed_certificate(directory)
        (directory / "agentchat.conf").write_text(
            site_config_for_this_machine(
                SITE_CONFIG.read_text(),
                upstream_ports=upstream_ports,
                http_port=http_port,
                https_port=https_port,
                directory=directory,
            )
        )
        (directory / "nginx.conf").write_text(MAIN_CONFIG.format(directory=directory, user=worker_user()))
        command = [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx -t refused the shipped site config:\n{checked.stderr}"
        tls = ssl.create_default_context(cafile=str(directory / "fullchain.pem"))
        site = Site(directory=directory, http_port=http_port, https_port=https_port, tls=tls)
        with (directory / "nginx.out").open("wb") as out:
            site.process = subprocess.Popen(
                [*command, "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(lambda: listening(https_port) and listening(http_port), timeout=10, message="nginx listens")
        yield site
    finally:
        if site is not None and site.process is not None and site.process.poll() is None:
            os.killpg(site.process.pid, signal.SIGTERM)
            try:
                site.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(site.process.pid, signal.SIGKILL)
                site.process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((SITE_HOST, port)) == 0


# --- the deployment behind it ---------------------------------------------------------------------


@dataclass
class Cluster:
    """The deployment, its two server processes (replaced as they restart), nginx in front."""

    deployment: Deployment
    servers: list[Server]
    site: Site
    fake: FakeOpenAI


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    redis_url = require_redis()
    postgres_url = require_postgres()
    require_nginx()
    redis.Redis.from_url(redis_url).flushdb()
    # The site's ports are chosen first: the processes trust its origin (CSRF_TRUSTED_ORIGINS).
    http_port, https_port = free_port(), free_port()
    workdirs: list[Path] = []
    try:
        with (
            FakeOpenAI() as fake,
            live_deployment(
                database_url=postgres_url,
                redis_url=redis_url,
                extra_env={
                    "DJANGO_BEHIND_PROXY": "1",
                    "DJANGO_ALLOWED_HOSTS": SITE_HOST,
                    "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{SITE_HOST}:{https_port}",
                    "DJANGO_SECURE_COOKIES": "1",
                    "DJANGO_HSTS_SECONDS": "3600",
                    "OPENAI_API_KEY": "test",
                    "OPENAI_BASE_URL": fake.base_url,
                    "OPENAI_MAX_RETRIES": "0",
                    # A process told to stop finishes the answer it writes (the rolling restart's answer
                    # takes about 20 s); the units allow the default 120 s.
                    "AGENT_DRAIN_SECONDS": "60",
                },
            ) as deployment,
        ):
            workdirs.append(deployment._workdir)
            servers = [deployment.start_server(server="uvicorn"), deployment.start_server(server="uvicorn")]
            with nginx_site((servers[0].port, servers[1].port), http_port, https_port) as site:
                yield Cluster(deployment=deployment, servers=servers, site=site, fake=fake)
    finally:  # after the processes stopped: the deployment's directory (logs, static files)
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


def sign_up_through(site: Site) -> Session:
    """Sign up through nginx over HTTPS, as a newcomer's browser does."""
    session = sign_up_with(site.client(follow_redirects=False))
    cookie = next(c for c in session.http.cookies.jar if c.name == "sessionid")
    assert cookie.secure  # DJANGO_SECURE_COOKIES, through the proxy's X-Forwarded-Proto
    return session


def api_token_through(site: Site, session: Session) -> str:
    """A token made on the account page, through nginx (read and send)."""
    created = session.http.post(
        "/account/tokens/",
        data={"name": "through nginx", "scopes": ["send"], "csrfmiddlewaretoken": session.http.cookies["csrftoken"]},
    )
    match = NEW_TOKEN.search(created.text)
    assert match, created.text[:2000]
    return match.group(1)


async def open_tab_through(site: Site, session: Session, conversation_id: int) -> LiveTab:
    """A browser tab's socket through nginx (wss, the session cookie, the page's Origin); its snapshot read."""
    connection = await connect(
        site.ws_url(conversation_id),
        additional_headers={"Cookie": session.cookie_header, "Origin": site.https_url},
        ssl=site.tls,
        open_timeout=10,
    )
    tab = LiveTab(connection)
    tab.snapshot = await tab.receive()
    assert tab.snapshot["type"] == "snapshot", tab.snapshot
    return tab


class Page:
    """One page on a conversation through nginx, reconnecting as the page does (`static/chat/connection.js`):
    at once after a close with 1012, else after a backoff of 0.5 s doubling to 10 s."""

    def __init__(self, site: Site, session: Session, conversation_id: int) -> None:
        self.site, self.session, self.conversation_id = site, session, conversation_id
        self.sockets: list[LiveTab] = []
        self.closes: list[int | None] = []
        self.failed_connects: list[str] = []

    @property
    def tab(self) -> LiveTab:
        return self.sockets[-1]

    async def connect(self) -> LiveTab:
        backoff = 0.5
        while True:
            try:
                self.sockets.append(await open_tab_through(self.site, self.session, self.conversation_id))
                return self.tab
            except (OSError, InvalidHandshake, TimeoutError) as error:
                self.failed_connects.append(repr(error))
                assert len(self.failed_connects) < 6, self.failed_connects
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    async def follow_to_done(self) -> None:
        """Read until the run's `done`, reconnecting whenever the socket is closed."""
        while True:
            try:
                await self.tab.receive_until(lambda f: f.get("type") == "done" and "seq" in f)
                return
            except ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd is not None else None)
                await self.connect()

    def events(self) -> list[dict]:
        """What the page shows of the run: snapshot events and live frames of every socket, by seq;
        fails if one seq came with two different contents."""
        seen: dict[int, dict] = {}
        for tab in self.sockets:
            for event in tab.caught_up_events():
                if event["seq"] in seen:
                    assert seen[event["seq"]] == event, f"seq {event['seq']} differs between sockets"
                seen[event["seq"]] = event
        return [seen[seq] for seq in sorted(seen)]

    async def close(self) -> None:
        for tab in self.sockets:
            await tab.close()


def stored_answer(deployment: Deployment, run_id: str) -> tuple[str, str, str]:
    """The answer's status, content and writing process (`host:pid:tag`)."""
    rows = deployment.query(
        "SELECT status, content, worker FROM conversations_message WHERE run_id = %s AND role = 'assistant'", run_id
    )
    assert len(rows) == 1, rows
    return rows[0]


async def probe_ready(server: Server) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            return (await client.get(f"{server.http_url}{READY_PATH}")).status_code == 200
        except httpx.HTTPError:
            return False


async def restart(cluster: Cluster, index: int) -> dict[str, float]:
    """Restart one server process as `systemctl restart agentchat@<port>` then the wait for /readyz do:
    SIGTERM, wait for it to exit (it drains), start it again on the same port, wait until ready."""
    old = cluster.servers[index]
    signalled = time.monotonic()
    os.killpg(old.process.pid, signal.SIGTERM)
    code = await asyncio.to_thread(old.process.wait, 90)
    exited = time.monotonic()
    assert code in (0, -signal.SIGTERM), f"exit {code}:\n{old.log()[-3000:]}"
    new = await asyncio.to_thread(cluster.deployment.start_server, server="uvicorn", port=old.port)
    await eventually(lambda: probe_ready(new), timeout=30, message=f"{READY_PATH} answers 200 on :{new.port}")
    cluster.servers[index] = new
    return {"exit": exited - signalled, "ready": time.monotonic() - exited}


async def keep_loading_a_page(site: Site, statuses: list[int | str], stop: asyncio.Event) -> None:
    """A user loading a page through nginx every 50 ms, over a kept-alive HTTP/1.1 connection."""
    async with site.async_client(timeout=10) as client:
        while not stop.is_set():
            try:
                statuses.append((await client.get("/accounts/login/")).status_code)
            except httpx.HTTPError as error:
                statuses.append(repr(error))
            await asyncio.sleep(0.05)


# --- through nginx: a rolling restart while an answer streams ---------------------------------------

ANSWER_WORDS = [f"{n}, " for n in range(1, 601)] + ["done."]


@pytest.mark.asyncio
@pytest.mark.redis
@pytest.mark.postgres
async def test_a_rolling_restart_through_nginx_loses_nothing_of_an_answer_streaming_to_a_tab(cluster):
    deployment, site, fake = cluster.deployment, cluster.site, cluster.fake
    fake.reset()
    # About 18 s of answer: long enough to restart one process while it streams, then the one writing it.
    fake.enqueue(StreamResponse(content_chunks(ANSWER_WORDS), delay=0.03))
    session = sign_up_through(site)
    conversation = session.new_conversation()
    page = Page(site, session, conversation)
    await page.connect()
    await page.tab.ask("Count to 600, please")
    run_id = (await page.tab.receive_until(lambda f: f.get("type") == "run_started"))[-1]["run_id"]
    await page.tab.receive_until(lambda f: f.get("type") == "token")
    writer_pid = int(stored_answer(deployment, run_id)[2].split(":")[1])
    writer = next(i for i, server in enumerate(cluster.servers) if server.process.pid == writer_pid)
    other = 1 - writer

    statuses: list[int | str] = []
    stop_loading = asyncio.Event()
    loading = asyncio.ensure_future(keep_loading_a_page(site, statuses, stop_loading))
    following = asyncio.ensure_future(page.follow_to_done())
    try:
        # The process not writing the answer first, then the one writing it, as a deploy goes through them.
        first = await restart(cluster, other)
        status, _, _ = stored_answer(deployment, run_id)
        assert status == "generating" and not following.done(), "the answer must still stream at the second restart"
        second = await restart(cluster, writer)
        await asyncio.wait_for(following, 30)
    finally:
        stop_loading.set()
        await asyncio.wait_for(loading, 15)
        following.cancel()
    status, content, _ = stored_answer(deployment, run_id)
    events = page.events()

    assert status == "completed" and content == "".join(ANSWER_WORDS)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "every seq once"
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
    assert "".join(e["text"] for e in events if e["type"] == "token") == content
    # The tab moved once, told by the process writing the answer (1012), and got in at the first try:
    # nginx passed the handshake on to the process that was up.
    assert page.closes == [1012], page.closes
    assert page.failed_connects == [], page.failed_connects
    # Nobody loading pages meanwhile saw an error.
    assert len(statuses) > 20 and set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    print(
        f"\nrolling restart: idle process exited {first['exit']:.2f} s after SIGTERM, ready {first['ready']:.2f} s "
        f"later; writing process exited {second['exit']:.2f} s after SIGTERM (the answer drained), ready "
        f"{second['ready']:.2f} s later; {len(events)} events; {len(statuses)} page loads, all 200"
    )
    await page.close()


# --- through nginx: the event streams, the socket, the edges ------------------------------------------


async def read_event_stream(
    client: httpx.AsyncClient, method: str, url: str, into: list[tuple[float, dict]], **options: Any
) -> None:
    """Open an event stream and parse its events into `into` as (arrival time, event) until it ends."""
    async with client.stream(method, url, **options) as response:
        assert response.status_code == 200, (await response.aread())[:500]
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                into.append((time.monotonic(), json.loads(line.removeprefix("data: "))))


def has_a_token(events: list[tuple[float, dict]], reader: asyncio.Future) -> bool:
    if reader.done():
        reader.result()  # the stream failed (raises) or ended
    return any(event["type"] == "token" for _, event in events)


@pytest.mark.asyncio
@pytest.mark.redis
@pytest.mark.postgres
async def test_event_streams_through_nginx_deliver_each_event_while_the_answer_is_still_being_written(cluster):
    deployment, site, fake = cluster.deployment, cluster.site, cluster.fake
    fake.reset()
    # The model sends two words, then holds the rest until the run is stopped: a buffering proxy would keep
    # those words (a few hundred bytes) to itself for as long as the model holds.
    fake.enqueue(StreamResponse(content_chunks(["Held ", "here ", "for ", "now."]), stall_after=3, stall_seconds=60))
    session = sign_up_through(site)
    token = api_token_through(site, session)
    bearer = {"Authorization": f"Bearer {token}"}
    followed: list[tuple[float, dict]] = []
    answered: list[tuple[float, dict]] = []

    async with site.async_client(timeout=httpx.Timeout(10, read=60)) as client:
        created = await client.post("/api/conversations/", headers=bearer)
        assert created.status_code == 201, created.text
        conversation = created.json()["id"]
        body = {"content": "Say something", "client_id": "sse-1"}
        # Following the conversation (GET .../stream), and the answer to a send (POST .../messages).
        readers = [
            asyncio.ensure_future(
                read_event_stream(client, "GET", f"/api/conversations/{conversation}/stream", followed, headers=bearer)
            ),
            asyncio.ensure_future(
                read_event_stream(
                    client, "POST", f"/api/conversations/{conversation}/messages", answered, headers=bearer, json=body
                )
            ),
        ]
        try:
            for events, reader in zip((followed, answered), readers, strict=True):
                await eventually(
                    lambda events=events, reader=reader: has_a_token(events, reader),
                    timeout=15,
                    message="a token event through nginx while the model holds the rest of the answer",
                )
            held = deployment.query(
                "SELECT status FROM conversations_message WHERE conversation_id = %s AND role = 'assistant'",
                conversation,
            )
            # Stop it from a tab, through nginx: both streams then end with `done`.
            tab = await open_tab_through(site, session, conversation)
            await tab.send({"type": "stop"})
            await asyncio.wait_for(asyncio.gather(*readers), 30)
            await tab.close()
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    assert held == [("generating",)]
    for events in (followed, answered):
        kinds = [e["type"] for _, e in events]
        assert kinds[0] == "run_started" and kinds[-1] == "done", kinds
        assert events[-1][1]["status"] == "cancelled"
        assert "".join(e["text"] for _, e in events if e["type"] == "token") == "Held here "
    first_token_at = next(at for at, e in followed if e["type"] == "token")
    print(f"\nevent streams: the first token came {followed[-1][0] - first_token_at:.2f} s before `done`")


@pytest.mark.asyncio
@pytest.mark.redis
@pytest.mark.postgres
async def test_a_websocket_opens_through_nginx_over_tls_and_http2_is_offered(cluster):
    site = cluster.site
    session = sign_up_through(site)
    conversation = session.new_conversation()

    tab = await open_tab_through(site, session, conversation)
    await tab.send({"type": "sync"})
    again = (await tab.receive_until(lambda f: f.get("type") == "snapshot"))[-1]
    await tab.close()
    # A page of another origin gets no socket, through nginx as without it.
    with pytest.raises(InvalidHandshake):
        await connect(
            site.ws_url(conversation),
            additional_headers={"Cookie": session.cookie_header, "Origin": "https://elsewhere.example"},
            ssl=site.tls,
            open_timeout=10,
        )
    with (
        socket.create_connection((SITE_HOST, site.https_port), timeout=5) as raw,
        site_tls_alpn(site).wrap_socket(raw, server_hostname=SITE_HOST) as tls,
    ):
        negotiated, version = tls.selected_alpn_protocol(), tls.version()

    assert again["messages"] == tab.snapshot["messages"] == []
    assert negotiated == "h2" and version in ("TLSv1.2", "TLSv1.3")


def site_tls_alpn(site: Site) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(site.directory / "fullchain.pem"))
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


@pytest.mark.redis
@pytest.mark.postgres
def test_port_80_answers_health_checks_and_sends_everything_else_to_https(cluster):
    site = cluster.site
    with httpx.Client(base_url=site.http_url, timeout=10, follow_redirects=False) as plain:
        page = plain.get("/accounts/login/?next=/c/1/")
        metrics = plain.get("/metrics")
        healthz = plain.get("/healthz")
        readyz = plain.get("/readyz")

    assert page.status_code == 301
    assert page.headers["location"] == f"https://{SITE_HOST}/accounts/login/?next=/c/1/"
    assert metrics.status_code == 301
    assert healthz.status_code == 200 and healthz.json() == {"status": "ok"}
    assert readyz.status_code == 200 and readyz.json() == {"status": "ready"}


@pytest.mark.redis
@pytest.mark.postgres
def test_metrics_are_refused_through_nginx_and_served_by_each_process_to_loopback(cluster):
    site = cluster.site
    with site.client() as client:
        refused = [client.get(path) for path in ("/metrics", "/metrics/", "/metrics?format=x")]
    direct = httpx.get(f"{cluster.servers[0].http_url}/metrics", timeout=10)

    assert [r.status_code for r in refused] == [403, 403, 403]
    assert all(r.headers.get("server", "").startswith("nginx") for r in refused), "refused by nginx itself"
    assert direct.status_code == 200 and direct.headers["content-type"].startswith("text/plain")


@pytest.mark.redis
@pytest.mark.postgres
def test_bodies_over_the_products_limit_are_refused_by_nginx(cluster):
    from django.conf import global_settings

    limit = global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    shipped = re.search(r"^\s*client_max_body_size (\d+)k;$", SITE_CONFIG.read_text(), re.MULTILINE)
    assert shipped and int(shipped.group(1)) * 1024 == limit, "client_max_body_size is Django's body limit"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer acht_nope"}
    with cluster.site.client() as client:
        at_limit = client.post("/api/conversations/", content=b" " * limit, headers=headers)
        over = client.post("/api/conversations/", content=b" " * (limit + 1), headers=headers)

    assert at_limit.status_code == 401, at_limit.text[:300]  # reached the product, which wants a token
    assert over.status_code == 413 and over.headers.get("server", "").startswith("nginx")


@pytest.mark.redis
@pytest.mark.postgres
def test_the_product_gets_nginx_request_id_and_scheme_and_probes_are_not_logged(cluster):
    site = cluster.site
    with site.client() as client:
        page = client.get("/accounts/login/", headers={"X-Request-ID": "chosen-by-the-client"})
        for path in ("/healthz", "/readyz"):
            assert client.get(path).status_code == 200
    with httpx.Client(base_url=site.http_url, timeout=10) as plain:
        assert plain.get("/healthz").status_code == 200

    request_id = page.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id  # nginx's $request_id, not the client's
    # The product took the request for HTTPS (X-Forwarded-Proto): it sends HSTS on secure requests only.
    assert page.headers.get("strict-transport-security", "").startswith("max-age=3600")
    logged = wait_until(lambda: [line for line in site.access_log().splitlines() if f"rid={request_id}" in line])
    assert "GET /accounts/login/ " in logged[0]
    assert "/healthz" not in site.access_log() and "/readyz" not in site.access_log()


def location_block(config: str, opening: str) -> str:
    """The text of the block that starts with `opening` (up to its `{`), to its closing brace."""
    start = config.index(opening)
    depth = 0
    for at in range(config.index("{", start), len(config)):
        depth += {"{": 1, "}": -1}.get(config[at], 0)
        if depth == 0:
            return config[start : at + 1]
    raise AssertionError(f"no end to {opening!r}")


def test_the_event_stream_location_takes_every_streaming_route_and_never_buffers_nor_times_out_early():
    config = SITE_CONFIG.read_text()
    opening = re.search(r"location ~ (\S+) \{", config)
    assert opening, "a regex location for the API's event streams"
    streams = location_block(config, opening.group(0))
    sockets = location_block(config, "location /ws/ {")
    pattern = re.compile(opening.group(1))

    for path in (
        "/api/conversations/7/stream",
        "/api/conversations/7/messages",
        "/api/conversations/7/regenerate",
        "/api/messages/12/edit",
    ):
        assert pattern.search(path), path
    for path in ("/api/conversations/7", "/api/conversations/", "/api/conversations/7/export", "/ws/conversations/7/"):
        assert not pattern.search(path), path
    # The product also sends X-Accel-Buffering: no, which alone keeps the live test above passing: this is
    # the file's own guarantee, for a response without it.
    for directive in ("proxy_buffering off;", "proxy_cache off;", "proxy_read_timeout 1h;"):
        assert directive in streams, directive
    for directive in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;", "proxy_read_timeout 1h;"):
        assert directive in sockets, directive
    assert "proxy_set_header Connection $connection_upgrade;" in sockets


# --- the service units ----------------------------------------------------------------------------


def unit_file(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections, each a list of (key, value) in order (keys may repeat, as ExecStart does)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line and not line.endswith("\\"), f"{path.name}: {raw!r}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def value(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


def environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments with # or ;)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            key, _, val = line.partition("=")
            env[key.strip()] = val.strip()
    return env


SERVICES = ("agentchat@.service", "agentchat-migrate.service", "agentchat-maintenance.service")
RELEASE = "/srv/agentchat"
RELEASE_PYTHON = "/srv/agentchat/.venv/bin/python"


def on_this_checkout(text: str) -> str:
    """A unit's text with the release's paths rewritten to this checkout, its virtualenv and env file."""
    text = text.replace(RELEASE_PYTHON, sys.executable).replace(RELEASE, str(ROOT))
    return text.replace("/etc/agentchat/env", str(ENV_EXAMPLE))


def manage_commands(unit: dict[str, list[tuple[str, str]]]) -> list[list[str]]:
    """The manage.py command lines of a unit's ExecStart=, as argument lists after `manage.py`."""
    commands = []
    for line in values(unit, "Service", "ExecStart"):
        argv = line.split()
        assert argv[:2] == [RELEASE_PYTHON, "manage.py"], line
        commands.append(argv[2:])
    return commands


def unit_env(directory: Path) -> dict[str, str]:
    """What a unit's process gets: .env.example (the file docs/deploy.md says to copy to /etc/agentchat/env),
    with production's choices and a database and static root of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DJANGO_", "PYTEST", "AGENT_"))}
    env.update(environment_file(ENV_EXAMPLE))
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_DEBUG="",
        DJANGO_SECRET_KEY="unit-test-" + uuid.uuid4().hex,
        DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}",
        DJANGO_STATIC_ROOT=str(directory / "static"),
    )
    return env


def run_manage(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_units_pass_systemd_analyze_verify_on_this_checkout(tmp_path):
    analyze = require_tool("systemd-analyze", "systemd")
    for path in UNITS.iterdir():
        (tmp_path / path.name).write_text(on_this_checkout(path.read_text()))
    names = ["agentchat@8001.service", "agentchat-migrate.service", "agentchat-maintenance.service"]
    names.append("agentchat-maintenance.timer")
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / name) for name in names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = [
        line for line in (result.stdout + result.stderr).splitlines() if "agentchat" in line or str(tmp_path) in line
    ]

    assert result.returncode == 0 and ours == [], result.stdout + result.stderr
    assert sorted(p.name for p in UNITS.iterdir()) == sorted([*SERVICES, "agentchat-maintenance.timer"])


def test_the_server_unit_stops_by_draining_for_longer_than_the_drain_can_take(tmp_path):
    from chatsite.lifespan import SHUTDOWN_MARGIN_SECONDS
    from conversations.management.commands.serve import GRACEFUL_CONNECTIONS_SECONDS

    unit = unit_file(UNITS / "agentchat@.service")
    drain = float(environment_file(ENV_EXAMPLE)["AGENT_DRAIN_SECONDS"])
    defaulted = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.AGENT_DRAIN_SECONDS)",
        ],
        cwd=ROOT,
        env={**unit_env(tmp_path), "AGENT_DRAIN_SECONDS": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert defaulted.returncode == 0, defaulted.stderr
    longest_stop = max(drain, float(defaulted.stdout.split()[-1])) + GRACEFUL_CONNECTIONS_SECONDS
    longest_stop += SHUTDOWN_MARGIN_SECONDS

    assert value(unit, "Service", "ExecStart") == f"{RELEASE_PYTHON} manage.py serve --host 127.0.0.1 --port %i"
    assert value(unit, "Service", "KillSignal") == "SIGTERM"
    assert value(unit, "Service", "KillMode") in ("mixed", "control-group")
    assert int(value(unit, "Service", "TimeoutStopSec")) > longest_stop  # 150 > 120 + 10 + 10
    assert value(unit, "Service", "Restart") == "on-failure"
    after = value(unit, "Unit", "After").split()
    for needed in ("network-online.target", "postgresql.service", "redis-server.service", "agentchat-migrate.service"):
        assert needed in after
    assert "agentchat-migrate.service" not in " ".join(values(unit, "Unit", "Wants") + values(unit, "Unit", "Requires"))


def test_every_service_runs_as_the_product_user_from_the_release_with_the_env_file_and_hardened():
    for name in SERVICES:
        unit = unit_file(UNITS / name)
        assert value(unit, "Service", "User") == "agentchat", name
        assert value(unit, "Service", "WorkingDirectory") == RELEASE, name
        assert value(unit, "Service", "EnvironmentFile") == "/etc/agentchat/env", name
        assert value(unit, "Service", "NoNewPrivileges") == "yes", name
        assert value(unit, "Service", "ProtectSystem") == "strict", name
        assert value(unit, "Service", "PrivateTmp") == "yes", name
    migrate = unit_file(UNITS / "agentchat-migrate.service")
    assert value(migrate, "Service", "Type") == "oneshot"
    assert manage_commands(migrate) == [["migrate", "--noinput"], ["collectstatic", "--noinput"]]
    assert value(migrate, "Service", "ReadWritePaths") == f"{RELEASE}/staticfiles"  # collectstatic's default root
    maintenance = unit_file(UNITS / "agentchat-maintenance.service")
    assert value(maintenance, "Service", "Type") == "oneshot"
    assert manage_commands(maintenance) == [["clearsessions"], ["purge_conversations"]]
    timer = unit_file(UNITS / "agentchat-maintenance.timer")
    assert value(timer, "Timer", "OnCalendar") == "daily"
    assert value(timer, "Timer", "Persistent") == "true"
    assert value(timer, "Timer", "RandomizedDelaySec")
    assert value(timer, "Install", "WantedBy") == "timers.target"


def test_every_manage_py_command_of_the_units_exists(tmp_path):
    env = unit_env(tmp_path)
    commands = {argv[0] for name in SERVICES for argv in manage_commands(unit_file(UNITS / name))}

    assert commands == {"serve", "migrate", "collectstatic", "clearsessions", "purge_conversations"}
    for command in sorted(commands):
        result = run_manage(["help", command], env)
        assert result.returncode == 0, f"manage.py help {command}: {result.stderr[-2000:]}"


def test_the_one_shot_units_commands_succeed_on_a_fresh_database_with_the_example_env_file(tmp_path):
    env = unit_env(tmp_path)
    ran = []
    for name in ("agentchat-migrate.service", "agentchat-maintenance.service"):  # in the release's order
        for argv in manage_commands(unit_file(UNITS / name)):
            result = run_manage(argv, env)
            assert result.returncode == 0, f"{name}: manage.py {' '.join(argv)}:\n{result.stderr[-3000:]}"
            ran.append(argv[0])

    assert ran == ["migrate", "collectstatic", "clearsessions", "purge_conversations"]
    assert (tmp_path / "static" / "staticfiles.json").exists()
