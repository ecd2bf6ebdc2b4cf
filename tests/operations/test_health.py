"""`/healthz`, `/readyz` and `/metrics`: answered before anything else, whatever the Host, never redirected;
readiness says what is down; metrics only for the allowed addresses or the token."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient, Client

from conversations.process import process_state

pytestmark = pytest.mark.django_db

PROBE_HOST = "10.1.2.3:8001"  # what a load balancer's probe sends: not in ALLOWED_HOSTS


@pytest.fixture
def production(settings):
    """Production's checks on: HTTPS redirect, secure cookies, only the site's own host."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    return settings


def test_healthz_answers_any_host_over_plain_http_with_no_redirect(production):
    reply = Client().get("/healthz", HTTP_HOST=PROBE_HOST)

    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}
    assert reply["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in reply
    # Every other path still gets the site's checks.
    assert Client().get("/accounts/login/", HTTP_HOST=PROBE_HOST).status_code == 400


def test_readyz_is_ready_when_the_database_answers_and_there_is_no_redis_to_ask(production):
    reply = Client().get("/readyz", HTTP_HOST=PROBE_HOST)

    assert (reply.status_code, reply.json()) == (200, {"status": "ready"})


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_readyz_says_redis_is_down_with_a_503_and_the_reason(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    reply = await AsyncClient().get("/readyz")

    assert reply.status_code == 503
    assert reply["Retry-After"] == "1"
    body = json.loads(reply.content)
    assert body["status"] == "unavailable"
    assert list(body["reasons"]) == ["redis"]
    assert "Connection" in body["reasons"]["redis"]


def test_readyz_is_503_while_the_process_drains():
    process_state().begin_drain()

    reply = Client().get("/readyz")

    assert reply.status_code == 503
    assert reply.json()["reasons"] == {"process": "draining: the process is stopping (a deploy or restart)"}
    assert Client().get("/healthz").status_code == 200  # alive all the same


def test_probes_refuse_other_methods():
    reply = Client().post("/healthz")

    assert reply.status_code == 405
    assert reply["Allow"] == "GET, HEAD"


def test_metrics_answer_loopback_and_refuse_another_address(settings):
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "::1"]

    allowed = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
    refused = Client().get("/metrics", REMOTE_ADDR="203.0.113.9")

    assert allowed.status_code == 200
    assert allowed["Content-Type"].startswith("text/plain")
    assert b"agentchat_runs_started_total" in allowed.content
    assert refused.status_code == 403
    assert b"agentchat" not in refused.content


def test_metrics_behind_the_proxy_go_by_the_client_address_the_proxy_added(settings):
    settings.BEHIND_PROXY = True
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "10.0.0.0/8"]
    client = Client()

    # Every request reaches the product from the proxy on 127.0.0.1: the client is the last entry.
    outside = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1, 198.51.100.7")
    inside = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.4.5.6")

    assert outside.status_code == 403
    assert inside.status_code == 200


def test_metrics_open_with_the_token_from_anywhere_and_not_with_a_wrong_one(settings):
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    client = Client()

    with_token = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-tokem")
    loopback = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert with_token.status_code == 200
    assert (wrong.status_code, loopback.status_code) == (403, 403)


def test_each_request_gets_an_id_or_keeps_the_proxys_sane_one(alice):
    client = Client()

    given = client.get("/accounts/login/", HTTP_X_REQUEST_ID="abc-123.x_y")
    made = client.get("/accounts/login/")
    forged = client.get("/accounts/login/", HTTP_X_REQUEST_ID="evil\nline " + "x" * 100)

    assert given["X-Request-ID"] == "abc-123.x_y"
    assert len(made["X-Request-ID"]) == 32
    assert forged["X-Request-ID"] not in ("", "evil\nline " + "x" * 100)
    assert len(forged["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("logger", "message", "args", "kept"),
    [
        ("uvicorn.access", '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/readyz", "1.1", 200), False),
        ("django.channels.server", "HTTP %(method)s %(path)s %(status)s", None, False),
        ("uvicorn.access", '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/healthzz", "1.1", 404), True),
        ("uvicorn.access", '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/c/1/?q=/metrics", "1.1", 200), True),
    ],
)
def test_probes_are_left_out_of_the_access_log(logger, message, args, kept):
    from logging import INFO, LogRecord

    from chatsite.logs import ProbeFilter

    if args is None:  # runserver's lines are formatted with a mapping
        args = ({"method": "GET", "path": "/healthz", "status": 200},)
    record = LogRecord(logger, INFO, __file__, 1, message, args, None)

    assert ProbeFilter().filter(record) is kept


@pytest.mark.parametrize(
    ("variable", "value"),
    [("METRICS_ALLOWED_IPS", "127.0.0.1,10.0.0.300"), ("LOG_FORMAT", "xml"), ("AGENT_RETENTION_DAYS", "1.5")],
)
def test_a_bad_operations_setting_stops_the_process_at_start(variable, value):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update({"DJANGO_SETTINGS_MODULE": "chatsite.settings", "DJANGO_DEBUG": "1", variable: value})
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert checked.returncode != 0
    assert "ImproperlyConfigured" in checked.stderr and variable in checked.stderr
