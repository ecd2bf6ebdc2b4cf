"""A Redis failover through Sentinel mid-answer is not an outage: the answer completes, and every tab
on every process ends with the text that is stored.

Each test has a private master, replica and three sentinels (tests/support/sentinel.py), and two
server processes that find Redis only through the sentinels (`REDIS_SENTINELS`, no `REDIS_URL`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import redis

from tests.live_server import Deployment
from tests.live_tabs import LiveTab, is_token_with
from tests.services import require_postgres
from tests.support.deployments import live_deployment
from tests.support.sentinel import SentinelCluster, sentinel_cluster
from tests.support.waits import eventually, wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.redis, pytest.mark.postgres]

RUN_LOG_PREFIX = "agentchat:run:"
THROTTLE_KEYS = "*rl:*"  # django-ratelimit's counts, in the cache
COUNT = 1000  # a token a number, 60 a second: ~17 s, past the switch and the old master's demotion (~11 s)
EXPECTED = ", ".join(str(n) for n in range(1, COUNT + 1)) + "."


@pytest.fixture
def cluster(tmp_path):
    with sentinel_cluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def deployment(cluster: SentinelCluster):
    sentinel_env = {"REDIS_SENTINELS": cluster.sentinels_setting, "REDIS_SENTINEL_MASTER": cluster.master_name}
    with live_deployment(
        database_url=require_postgres(), redis_url="", tokens_per_second=60, extra_env=sentinel_env
    ) as deployment:
        yield deployment


def stored_answer(deployment: Deployment, run_id: str) -> tuple[str, str] | None:
    """The answer's (status, content) once it is no longer being written."""
    rows = deployment.query(
        "SELECT status, content FROM conversations_message WHERE run_id = %s AND role = 'assistant'", run_id
    )
    return rows[0] if rows and rows[0][0] != "generating" else None


def logged_events(port: int, run_id: str) -> list[dict]:
    with redis.Redis(port=port) as node:
        return [json.loads(fields[b"e"]) for _id, fields in node.xrange(RUN_LOG_PREFIX + run_id)]


def throttle_total(port: int) -> int:
    """The sum of the throttles' counts in a Redis."""
    with redis.Redis(port=port) as node:
        return sum(int(node.get(key) or 0) for key in node.keys(THROTTLE_KEYS))


async def answer_across(deployment: Deployment, fail: Callable[[], object]) -> tuple[str, list[str]]:
    """Ask for a long answer from a tab on one process, with tabs on two following it as the page does,
    and `fail()` (in a thread) once it is at its 20th number; the run's id and each tab's final text."""
    a, b = deployment.start_server(), deployment.start_server()
    session = deployment.sign_up(a)
    conversation = session.new_conversation()
    on_a, on_b, watcher = [await LiveTab.open(server, session, conversation) for server in (a, b, b)]

    await on_a.ask(f"count to {COUNT}")
    followers = asyncio.gather(on_a.answer_like_the_page(), on_b.answer_like_the_page())
    run_id = (await watcher.receive_until(lambda f: f.get("type") == "run_started"))[-1]["run_id"]
    await watcher.receive_until(is_token_with("20,"))
    await asyncio.to_thread(fail)
    assert stored_answer(deployment, run_id) is None, "the answer is still streaming after the failover"
    texts = [text for text, _live in await followers]
    for tab in (on_a, on_b, watcher):
        await tab.close()
    return run_id, texts


def subscribers(cluster: SentinelCluster, port: int) -> int:
    """The server processes' subscriber connections to a Redis (each sentinel has one too, named)."""
    with cluster.node(port) as node:
        return sum(not client["name"].startswith("sentinel-") for client in node.client_list(_type="pubsub"))


async def test_a_failover_mid_answer_completes_it_and_every_tab_shows_what_is_stored(deployment, cluster):
    old_master, replica = cluster.master_port, cluster.replica_port

    def fail_over() -> None:
        cluster.failover()
        # Both processes' subscriptions move to the new master while the old one still takes them.
        wait_until(lambda: subscribers(cluster, replica) >= 2, 5, 0.05, "both processes subscribe on the new master")
        assert cluster.role(old_master) == "master", "moved by the product, not by Sentinel's demotion"
        cluster.demoted(old_master)

    run_id, texts = await answer_across(deployment, fail_over)

    assert (cluster.master_port, cluster.replica_port) == (replica, old_master)
    assert await eventually(lambda: stored_answer(deployment, run_id)) == ("completed", EXPECTED)
    assert texts == [EXPECTED, EXPECTED]
    logged = logged_events(replica, run_id)
    assert logged[-1]["type"] == "done" and logged[-1]["status"] == "completed"
    # The sign-up throttle counts through the sentinels too: the first sign-up's count came to the
    # replica from the master, the next one is counted in the replica, the master now.
    counted = throttle_total(replica)
    deployment.sign_up(deployment.servers[1])
    assert throttle_total(replica) > counted > 0


async def test_the_master_killed_mid_answer_completes_it_and_every_tab_shows_what_is_stored(deployment, cluster):
    replica = cluster.replica_port

    def crash_and_fail_over() -> None:
        cluster.kill_master()
        wait_until(lambda: cluster.masters_named() == {replica}, 30, 0.05, "the sentinels name the replica")

    run_id, texts = await answer_across(deployment, crash_and_fail_over)

    assert await eventually(lambda: stored_answer(deployment, run_id)) == ("completed", EXPECTED)
    assert texts == [EXPECTED, EXPECTED]
    logged = logged_events(replica, run_id)
    assert logged[-1]["type"] == "done" and logged[-1]["status"] == "completed"
