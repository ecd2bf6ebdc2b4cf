"""Two processes on PostgreSQL + Redis against one, at the same offered load: the sizing guide's check.

`python -m bench.cluster` runs it alone; `bench.run` runs it in the full bench. Two server
processes (the production server, `pubsub` layer, a fresh PostgreSQL database) serve
conversations of 3 tabs at 100 tok/s per run. At each offered load the same conversations run
first on one process (every tab on it), then spread over two the way a proxy without sticky
sessions spreads them (a conversation's tabs alternate between the processes, and runs start
on both alike). The load steps up until a configuration fails twice (p99 >= 100 ms, anything
lost, or the model under 90 % of its pace). Alongside, per answer and per token: SQL statements
(counted in each process by `bench.asgi` with `BENCH_COUNT_SQL=1`), PostgreSQL transactions
(`pg_stat_database`) and Redis commands (`INFO commandstats`, less an idle window of the same
length: the Redis server is shared with other work on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import httpx
import psutil
import redis

from bench.clients import Tab
from bench.load import KEPT_PACE, SATURATION_P99_MS, TABS_PER_CONVERSATION
from bench.scenarios import Bench, RepResult, Stream, run_streams
from bench.servers import REDIS_URL, BenchDeployment, ProcessMeter, flush_redis, redis_available
from tests.live_server import Server, Session, ws_headers
from tests.services import POSTGRES_URL, _reachable

PER_RUN = 100.0
TOKENS = 300
OFFERED = (300, 500, 700, 1000, 1500, 2000, 3000, 4000)
PROBE_OFFERED = 500  # where SQL, transactions and Redis commands are counted per answer


class GroupMeter(ProcessMeter):
    """CPU and memory of several server processes together."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(pids[0])
        self.pids = pids

    def processes(self) -> list[psutil.Process]:
        """Every process of every server."""
        found: list[psutil.Process] = []
        for pid in self.pids:
            try:
                main = psutil.Process(pid)
                found += [main, *main.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found


async def open_spread(servers: list[Server], session: Session, conversations: int, offset: int) -> list[Stream]:
    """`conversations` new conversations, 3 tabs each, the tabs alternating over `servers`; the
    starter tab (the first) of conversation n on server (n + offset) mod len(servers)."""
    streams = []
    for n in range(conversations):
        conversation = await asyncio.to_thread(session.new_conversation)
        hosts = [servers[(n + offset + t) % len(servers)] for t in range(TABS_PER_CONVERSATION)]
        tabs = await asyncio.gather(*(Tab.open(host.ws_url(conversation), ws_headers(session, host)) for host in hosts))
        streams.append(Stream(system="product", tabs=list(tabs)))
    return streams


def _passes(rep: RepResult) -> bool:
    return (
        rep.p99_ms < SATURATION_P99_MS
        and rep.exact
        and rep.lost_live == 0
        and rep.refused == 0
        and rep.unfinished == 0
        and rep.model_rate >= KEPT_PACE * PER_RUN
    )


def redis_commands() -> dict[str, int]:
    """Calls per Redis command since the server started (`INFO commandstats`)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def pg_counts(database_url: str) -> dict[str, int]:
    """Transactions and rows of the deployment's own database so far (`pg_stat_database`)."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_returned "
            "FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    keys = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "tup_returned")
    return dict(zip(keys, (int(v or 0) for v in row), strict=True)) if row else {}


def sql_counts(servers: list[Server]) -> dict[str, int]:
    """SQL statements the server processes ran so far, by first word (`bench.asgi`'s counter)."""
    total: dict[str, int] = {}
    for server in servers:
        for kind, count in httpx.get(server.http_url + "/bench/sql", timeout=5).json().items():
            total[kind] = total.get(kind, 0) + count
    return total


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


@dataclass
class Probe:
    """What one configuration's step cost outside the process: counted before and after."""

    sql: dict[str, int]
    pg: dict[str, int]
    redis: dict[str, int]


def _probe(servers: list[Server], database_url: str) -> Probe:
    return Probe(sql=sql_counts(servers), pg=pg_counts(database_url), redis=redis_commands())


def _per(counts: dict[str, int], divisor: float) -> dict[str, float]:
    return {k: round(v / divisor, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def _rep_record(offered: float, rep: RepResult) -> dict[str, Any]:
    record = {k: v for k, v in asdict(rep).items() if k != "tabs"}
    return {"offered_tokens_per_s": offered, "passed": _passes(rep), "relayed_tokens_per_s": None, **record}


async def _measure(
    bench: Bench, servers: list[Server], session: Session, conversations: int, offset: int
) -> tuple[RepResult, list[Stream]]:
    streams = await open_spread(servers, session, conversations, offset)
    try:
        rep = await run_streams(bench, streams, TOKENS)
    except BaseException:
        for stream in streams:
            await stream.close()
        raise
    return rep, streams


async def _close(streams: list[Stream]) -> None:
    for stream in streams:
        await stream.close()


async def cluster_scenario(log: Callable[[str], None]) -> dict[str, Any]:
    """One process against two on PostgreSQL + Redis pubsub, step by step, and the per-answer counts."""
    if not redis_available():
        return {"skipped": "Redis is not reachable"}
    if not _reachable(POSTGRES_URL, 5432):
        return {"skipped": f"PostgreSQL is not reachable at {POSTGRES_URL}"}
    deployment = BenchDeployment.prepare(database_url=POSTGRES_URL)
    flush_redis()
    try:
        env = {"BENCH_COUNT_SQL": "1"}
        servers = [
            await asyncio.to_thread(deployment.start_app, layer="pubsub", tokens_per_second=PER_RUN, flush=False, **env)
            for _ in range(2)
        ]
        session = await asyncio.to_thread(deployment.sign_up, servers[0])
        database_url = deployment.env["DATABASE_URL"]
        one = Bench(servers[0], session, ProcessMeter(servers[0].process.pid), "pubsub", PER_RUN)
        two = replace(one, meter=GroupMeter([s.process.pid for s in servers]))
        warm, _streams = await _measure(one, servers, session, 2, 0)
        await _close(_streams)
        steps: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}
        going = {"one", "two"}
        probes: dict[str, Any] = {}
        for offered in OFFERED:
            conversations = round(offered / PER_RUN)
            for name in ("one", "two"):
                if name not in going:
                    continue
                hosts = servers[:1] if name == "one" else servers
                bench = one if name == "one" else two
                before = _probe(servers, database_url) if offered == PROBE_OFFERED else None
                rep, streams = await _measure(bench, hosts, session, conversations, 0)
                after = _probe(servers, database_url) if offered == PROBE_OFFERED else None
                if not _passes(rep):  # one retry, on the same conversations
                    rep = await run_streams(bench, streams, TOKENS)
                await _close(streams)
                record = _rep_record(offered, rep)
                record["relayed_tokens_per_s"] = round(conversations * rep.model_rate, 1)
                steps[name].append(record)
                log(
                    f"  {name} process(es), {offered:g} tok/s offered: p99 {rep.p99_ms:.1f} ms, "
                    f"lost {rep.lost_live}, server cpu {rep.cpu_s_per_1k_tokens:.3f} s/1k, "
                    f"load generator {rep.client_cores:.2f} cores, passed {record['passed']}"
                )
                if before and after:
                    probes[name] = {
                        "answers": conversations,
                        "tokens": conversations * TOKENS,
                        "wall_s": rep.wall_s,
                        "sql": _delta(after.sql, before.sql),
                        "pg": _delta(after.pg, before.pg),
                        "redis": _delta(after.redis, before.redis),
                    }
                if not record["passed"]:
                    going.discard(name)
            if not going:
                break
        baseline = await _redis_idle(probes.get("two", {}).get("wall_s", 3.0))
        return _summary(steps, probes, baseline, warm)
    finally:
        deployment.close()
        flush_redis()


async def _redis_idle(seconds: float) -> dict[str, int]:
    """Redis commands of other work on the machine during an idle window as long as the probe."""
    before = redis_commands()
    await asyncio.sleep(seconds)
    return _delta(redis_commands(), before)


def _summary(
    steps: dict[str, list[dict[str, Any]]], probes: dict[str, Any], baseline: dict[str, int], warm: RepResult
) -> dict[str, Any]:
    def best(name: str) -> dict[str, Any] | None:
        return next((s for s in reversed(steps[name]) if s["passed"]), None)

    shared = [s["offered_tokens_per_s"] for s in steps["one"] if s["passed"]]
    shared = [o for o in shared if any(t["offered_tokens_per_s"] == o and t["passed"] for t in steps["two"])]
    at = max(shared) if shared else (steps["one"][0]["offered_tokens_per_s"] if steps["one"] else None)
    pick = {name: next((s for s in steps[name] if s["offered_tokens_per_s"] == at), None) for name in steps}
    per_answer: dict[str, Any] = {}
    probe = probes.get("two")
    if probe:
        answers, tokens = probe["answers"], probe["tokens"]
        redis_calls = {k: max(0, v - baseline.get(k, 0)) for k, v in probe["redis"].items()}
        redis_calls = {k: v for k, v in redis_calls.items() if v}
        per_answer = {
            "answers": answers,
            "tokens": tokens,
            "sql_per_answer": _per(probe["sql"], answers),
            "sql_total_per_answer": round(sum(probe["sql"].values()) / answers, 2),
            "pg_per_answer": _per(probe["pg"], answers),
            "redis_per_answer": _per(redis_calls, answers),
            "redis_per_token": _per(redis_calls, tokens),
            "redis_total_per_token": round(sum(redis_calls.values()) / tokens, 3),
            "redis_idle_baseline": baseline,
        }
    return {
        "per_run_tokens_per_s": PER_RUN,
        "tokens_per_run": TOKENS,
        "tabs_per_conversation": TABS_PER_CONVERSATION,
        "steps": steps,
        "max_one": best("one")["relayed_tokens_per_s"] if best("one") else 0.0,
        "max_two": best("two")["relayed_tokens_per_s"] if best("two") else 0.0,
        "offered_tokens_per_s": at,
        "one": pick["one"],
        "two": pick["two"],
        "counts": per_answer,
        "warm_up_p99_ms": warm.p99_ms,
    }


def main(argv: list[str] | None = None) -> int:
    """Run it alone and print the summary as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    result = asyncio.run(cluster_scenario(log))
    text = json.dumps(result, indent=1, default=float)
    print(text)
    if args.output:
        with open(args.output, "w") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
