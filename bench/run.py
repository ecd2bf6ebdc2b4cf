"""`python -m bench.run [--quick]`: measure, print one table, write bench/results.json.

Each (layer, model pace, server) gets its own server process serving `bench.asgi:application`,
started, warmed up, measured and stopped before the next, on one SQLite database; servers
compared with each other run side by side and take turns. Then time to first token
(`bench.ttft`), and in the full run two processes on PostgreSQL + Redis (`bench.cluster`)
and the charts (`bench.charts`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import report
from bench.load import saturation_paired, scale
from bench.plan import FULL, QUICK, Group, Plan
from bench.scenarios import SYSTEMS, Bench, RepResult, Stream, idle_memory, run_streams
from bench.servers import PRODUCTION_SERVER, BenchDeployment, ProcessMeter, flush_redis, redis_available
from tests.live_server import Server, Session

WARMUP_TOKENS = 30
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception)\b")


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def session_on(server: Server, session: Session) -> Session:
    """The same logged-in user, talking HTTP to another server of the deployment."""
    http = httpx.Client(base_url=server.http_url, timeout=10, follow_redirects=False, cookies=session.http.cookies)
    return Session(username=session.username, http=http)


class Runner:
    """Runs a plan on one deployment; collects the results."""

    def __init__(self, plan: Plan, deployment: BenchDeployment) -> None:
        self.plan = plan
        self.deployment = deployment
        self.user: Session | None = None
        self.results: dict[str, Any] = {
            "configs": [],
            "saturation": [],
            "scale": [],
            "memory": [],
            "servers": list(dict.fromkeys(server for group in plan.groups for server in group.servers)),
            "load_average": [],
            "server_errors": [],
        }

    @asynccontextmanager
    async def serving(
        self, layer: str, rate: float, server_name: str = PRODUCTION_SERVER, env: dict[str, str] | None = None
    ) -> AsyncIterator[Bench]:
        """A fresh server process for this layer, pace and server (and `env`), for the time of the block."""
        server = await asyncio.to_thread(
            self.deployment.start_app,
            layer=layer,
            tokens_per_second=rate,
            server=server_name,
            flush=False,
            **(env or {}),
        )
        session: Session | None = None
        try:
            if self.user is None:
                self.user = await asyncio.to_thread(self.deployment.sign_up, server)
            session = session_on(server, self.user)
            meter = ProcessMeter(server.process.pid)
            yield Bench(server=server, session=session, meter=meter, layer=layer, rate=rate, server_name=server_name)
        finally:
            if session is not None:
                session.http.close()
            await asyncio.to_thread(self.deployment.stop, server)
            self.note_errors(f"{server_name} {layer}@{rate:g} #{len(self.results['load_average'])}", server.log())

    @asynccontextmanager
    async def serving_all(self, layer: str, rate: float, servers: tuple[str, ...]) -> AsyncIterator[list[Bench]]:
        """One process per server, all running for the time of the block (Redis flushed once, before)."""
        if layer != "memory":
            await asyncio.to_thread(flush_redis)
        async with AsyncExitStack() as stack:
            benches = []
            for name in servers:
                try:
                    benches.append(await stack.enter_async_context(self.serving(layer, rate, name)))
                except (RuntimeError, OSError) as failed:  # a server that does not start is left out, said so
                    if name == servers[0]:
                        raise
                    log(f"  {name} did not start: {str(failed)[-300:]}")
                    self.results["server_errors"].append({"server": name, "did_not_start": str(failed)[-1000:]})
            yield benches

    def note_errors(self, what: str, log_text: str) -> None:
        """Count the tracebacks the server logged (a consumer that crashed has dropped its tab)."""
        lines = log_text.splitlines()
        tracebacks = sum(line.startswith("Traceback (most recent call last)") for line in lines)
        kinds = sorted({line.strip()[:160] for line in lines if EXCEPTION_LINE.match(line)})
        if tracebacks:
            self.results["server_errors"].append({"server": what, "tracebacks": tracebacks, "kinds": kinds[:5]})
            log(f"  server {what} logged {tracebacks} tracebacks: {'; '.join(kinds[:3])}")

    def note_load(self, what: str) -> None:
        """The machine's load average when a part started (other work on the machine skews latency)."""
        self.results["load_average"].append({"part": what, "load_1m": round(os.getloadavg()[0], 2)})

    async def run(self) -> dict[str, Any]:
        """Every part of the plan, in order."""
        try:
            for group in self.plan.groups:
                await self.measure_group(group)
            await self.measure_load()
        finally:
            if self.user is not None:
                self.user.http.close()
        return self.results

    async def measure_group(self, group: Group) -> None:
        """The product (and, on the in-memory layer, the references) at each tab count, on each server."""
        systems = SYSTEMS if group.with_references else ("product",)
        self.note_load(f"{group.layer}@{group.rate:g}")
        log(
            f"layer {group.layer}, {group.rate:g} tok/s, tabs {group.tabs}, "
            f"{'/'.join(group.servers)}: {', '.join(systems)}"
        )
        async with self.serving_all(group.layer, group.rate, group.servers) as benches:
            # The references run on the first server only: they measure the model path, not the server.
            pairs = [(benches[0], system) for system in systems] + [(bench, "product") for bench in benches[1:]]
            for bench in benches:
                await self.warm_up(bench, tuple(system for b, system in pairs if b is bench))
            for tabs in group.tabs:
                reps = await self.repetitions(pairs, tabs)
                for bench, system in pairs:
                    layer = group.layer if system == "product" else "-"
                    row = report.summarise(system, layer, group.rate, tabs, reps[(bench.server_name, system)])
                    row["server"] = bench.server_name
                    self.results["configs"].append(row)
                    log(
                        f"  {bench.server_name:9} {system:7} {tabs:2} tabs: "
                        f"p50 {row['p50_ms']} p99 {row['p99_ms']} ms, "
                        f"cpu {row['cpu_s_per_1k_tokens']} s/1k, exact {row['exact']}"
                    )

    async def warm_up(self, bench: Bench, systems: tuple[str, ...]) -> None:
        """One short unmeasured run per system: imports, connections and caches warm."""
        for system in systems:
            stream = await Stream.open(bench, system, 1)
            await run_streams(bench, [stream], WARMUP_TOKENS)
            await stream.close()

    async def repetitions(self, pairs: list[tuple[Bench, str]], tabs: int) -> dict[tuple[str, str], list[RepResult]]:
        """`reps` runs of each (server, system), interleaved so that drift on the machine hits them alike."""
        streams = {(b.server_name, system): (b, await Stream.open(b, system, tabs)) for b, system in pairs}
        reps: dict[tuple[str, str], list[RepResult]] = {key: [] for key in streams}
        try:
            for _ in range(self.plan.reps):
                for key, (bench, stream) in streams.items():
                    reps[key].append(await run_streams(bench, [stream], self.plan.tokens))
                    if stream.refused:  # stuck busy: later runs need a conversation that is not
                        log(f"  {key}: the conversation refused the run (busy); going on with a new one")
                        await stream.close()
                        streams[key] = (bench, await Stream.open(bench, key[1], tabs))
                    await asyncio.sleep(0.1)
        finally:
            for _bench, stream in streams.values():
                await stream.close()
        return reps

    async def measure_load(self) -> None:
        """Idle memory, scale and saturation: many conversations on one process (per server)."""
        plan = self.plan
        for part in plan.load:
            self.note_load(f"load {part.layer}@{part.rate:g}")
            async with self.serving_all(part.layer, part.rate, part.servers) as benches:
                for bench in benches:
                    await self.warm_up(bench, ("product",))
                bench = benches[0]
                if part.idle:
                    log(f"layer {part.layer}: {plan.idle_connections} idle tabs ({bench.server_name})")
                    memory = await idle_memory(bench, plan.idle_connections)
                    self.results["memory"].append({"layer": part.layer, "server": bench.server_name, **memory})
                if part.scale:
                    log(f"layer {part.layer}: {plan.scale_conversations} runs at {part.rate:g} tok/s at once")
                    result = await scale(bench, plan.scale_conversations, plan.tokens, plan.scale_reps)
                    self.results["scale"].append(result)
                    log(f"  p99 {result['p99_ms']:.1f} ms, lost {result['lost']}, exact {result['exact']}")
                if part.saturation:
                    names = "/".join(part.servers)
                    log(f"layer {part.layer}: saturation, {part.rate:g} tok/s per run, {names}")
                    found = await saturation_paired(benches, list(plan.saturation_totals), plan.saturation_tokens)
                    self.results["saturation"] += found
                    for result in found:
                        log(
                            f"  {result['server']:15} max {result['max_passing_tokens_per_s']} tok/s, "
                            f"cpu {result['cpu_s_per_1k_at_max']} s/1k there"
                        )


async def optional_parts(plan: Plan, results: dict[str, Any]) -> None:
    """Time to first token (`bench.ttft`), and in the full run the two-process run (`bench.cluster`)."""
    try:
        from bench.ttft import ttft_scenario
    except ImportError as missing:
        log(f"time to first token not measured ({missing})")
        results["skipped"].append(f"time to first token ({missing})")
    else:
        log("time to first token")
        try:
            results["ttft"] = await ttft_scenario(plan.quick, log)
        except Exception as failed:  # one part failing must not lose the rest of the run
            log(f"time to first token failed: {failed!r}")
            results["skipped"].append(f"time to first token (failed: {failed!r})")
    if plan.cluster:
        from bench.cluster import cluster_scenario

        log("two processes on PostgreSQL + Redis")
        try:
            results["cluster"] = await cluster_scenario(log)
        except Exception as failed:
            log(f"the two-process run failed: {failed!r}")
            results["skipped"].append(f"two processes on PostgreSQL + Redis (failed: {failed!r})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a cut-down matrix, about 4 minutes")
    parser.add_argument("--no-charts", action="store_true", help="do not redraw docs/bench-*.png (full run)")
    parser.add_argument("--layers", help="only these channel layers, comma-separated (memory,core,pubsub)")
    parser.add_argument("--output", type=Path, default=report.RESULTS_PATH, help="where to write the JSON results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the plan, print the table and the targets, save the JSON."""
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    results: dict[str, Any] = {"quick": plan.quick, "machine": machine(), "skipped": []}
    if args.layers:
        layers = set(args.layers.split(","))
        plan = plan.only_layers(layers)
        results["skipped"].append(f"layers other than {', '.join(sorted(layers))} (--layers)")
    if not redis_available():
        log("Redis is not reachable: measuring the in-memory layer only")
        results["skipped"].append("Redis layers (Redis not reachable)")
        plan = plan.without_redis()
    started = time.monotonic()
    deployment = BenchDeployment.prepare()
    try:
        results |= asyncio.run(Runner(plan, deployment).run())
    finally:
        deployment.close()
        if redis_available():
            flush_redis()
    asyncio.run(optional_parts(plan, results))
    if redis_available():
        flush_redis()
    results["duration_s"] = round(time.monotonic() - started, 1)
    report.add_ratios(results["configs"])
    results["targets"] = report.targets(results)
    print(report.table(results["configs"]))
    print(report.server_table(results))
    if results.get("ttft"):
        from bench.ttft import table as ttft_table

        print(ttft_table(results["ttft"]))
    print("\n".join(report.summary_lines(results)))
    print(f"total {results['duration_s']} s; results in {args.output}")
    report.save(results, args.output)
    if plan.charts and not args.no_charts:
        from bench.charts import draw_all

        for path in draw_all(results):
            print(f"chart {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
