"""The login throttle against real daphne processes: one count per account, shared through Redis."""

from __future__ import annotations

import uuid

import httpx
import pytest

from accounts.throttling import TOO_MANY_ATTEMPTS
from tests.live_server import Server
from tests.services import require_redis
from tests.support.deployments import live_deployment

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def deployment():
    with live_deployment(redis_url=require_redis()) as deployment:
        yield deployment


def attempt_login(server: Server, username: str) -> httpx.Response:
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        http.get("/accounts/login/")
        form = {"csrfmiddlewaretoken": http.cookies["csrftoken"], "username": username, "password": "wrong"}
        return http.post("/accounts/login/", data=form)


def test_login_attempts_on_different_processes_count_together(deployment):
    # A day's window: the count cannot roll over between the attempts.
    first, second = (deployment.start_server(LOGIN_RATE_PER_ACCOUNT="3/d") for _ in range(2))
    username = f"nobody-{uuid.uuid4().hex[:8]}"

    answers = [attempt_login(server, username) for server in (first, second, first, second)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert TOO_MANY_ATTEMPTS in answers[-1].text
    assert attempt_login(first, f"{username}-other").status_code == 200
