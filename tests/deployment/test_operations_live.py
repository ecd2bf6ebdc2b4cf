"""What an operator sees of a real `manage.py serve --workers 2` on PostgreSQL and its own Redis:

- `/healthz` and `/readyz` answer 200; with Redis down `/readyz` is 503 naming it, and back once it is;
- `/metrics` counts the runs just made, whichever worker served them (started, finished `completed`,
  tokens relayed, first token), and refuses an address not in `METRICS_ALLOWED_IPS`;
- the log is JSON, with one line for each run's start and end carrying its ids.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import Deployment, Server, free_port
from tests.live_tabs import LiveTab
from tests.services import require_postgres, require_redis
from tests.support.deployments import live_deployment
from tests.support.waits import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]

OUTSIDE = "127.0.0.2"  # another address of this machine: not among METRICS_ALLOWED_IPS


class OwnRedis:
    """A Redis of this test's own, to stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG"
        ):
            assert time.monotonic() < deadline, "the test's Redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[OwnRedis]:
    require_redis()  # the same rule as every Redis test: skip, or fail in CI, when Redis is missing
    redis = OwnRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def deployment(own_redis: OwnRedis) -> Iterator[tuple[Deployment, Server]]:
    with live_deployment(
        database_url=require_postgres(),
        redis_url=own_redis.url,
        tokens_per_second=200,
        extra_env={"LOG_LEVEL": "INFO", "METRICS_ALLOWED_IPS": "127.0.0.1", "LOG_FORMAT": ""},
    ) as made:
        server = made.start_server(
            command=lambda port: [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "2"]
        )
        yield made, server


def metrics(server: Server, *, local_address: str = "127.0.0.1") -> dict[tuple[str, tuple], float]:
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(transport=transport, timeout=5) as client:
        reply = client.get(server.http_url + "/metrics")
    assert reply.status_code == 200, reply.text
    values = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_the_runs_just_made_and_the_log_has_their_start_and_end(deployment):
    made, server = deployment
    before = metrics(server)
    session = made.sign_up(server)
    run_ids = []
    for question in ("count to 20", "what is 12 times 7?"):
        conversation = session.new_conversation()
        tab = await LiveTab.open(server, session, conversation)
        await tab.ask(question)
        seen = await tab.run_events_until_done()
        assert seen[-1]["status"] == "completed"
        run_ids.append((seen[0]["run_id"], conversation))
        await tab.connection.close()

    def counted() -> bool:
        after = metrics(server)
        return (
            value(after, "agentchat_runs_finished_total", status="completed")
            - value(before, "agentchat_runs_finished_total", status="completed")
            == 2
        )

    await eventually(counted, timeout=10)  # whichever of the two workers answers /metrics
    after = metrics(server)
    assert value(after, "agentchat_runs_started_total") - value(before, "agentchat_runs_started_total") == 2
    assert value(after, "agentchat_tokens_relayed_total") > value(before, "agentchat_tokens_relayed_total")
    assert (
        value(after, "agentchat_first_token_seconds_count") - value(before, "agentchat_first_token_seconds_count") == 2
    )
    assert value(after, "agentchat_runs_active") == 0

    refused = httpx.Client(transport=httpx.HTTPTransport(local_address=OUTSIDE)).get(server.http_url + "/metrics")
    assert refused.status_code == 403

    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    for run_id, conversation in run_ids:
        mine = [line for line in lines if line.get("run_id") == run_id and line.get("event")]
        assert [line["event"] for line in mine] == ["run_started", "run_finished"], mine
        started, finished = mine
        assert started["conversation_id"] == conversation and started["user_id"]
        assert started["level"] == "INFO" and started["logger"] == "agentchat.runs" and started["time"]
        assert finished["status"] == "completed" and finished["first_token_ms"] > 0 and finished["output_tokens"] > 0
        assert finished["worker"] and finished["duration_ms"] > 0


# Last: it restarts the Redis the server uses.
async def test_health_and_readiness_follow_redis(deployment, own_redis):
    _, server = deployment
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        assert (await client.get("/healthz", headers={"Host": "10.0.0.9"})).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200

        own_redis.stop()
        try:
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert list(down.json()["reasons"]) == ["redis"]
            assert (await client.get("/healthz")).status_code == 200
        finally:
            own_redis.start()

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=20)
