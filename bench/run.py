"""`python -m bench.run [--quick]`: measure, print one table, write bench/results.json.

Each (layer, model pace) gets its own daphne process serving `bench.asgi:application`,
started, warmed up, measured and stopped before the next, on one SQLite database.
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
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import report
from bench.load import saturation, scale
from bench.plan import FULL, QUICK, Group, Plan
from bench.scenarios import SYSTEMS, Bench, RepResult, Stream, idle_memory, run_streams
from bench.servers import BenchDeployment, ProcessMeter, flush_redis, redis_available
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
            "load_average": [],
            "server_errors": [],
        }

    @asynccontextmanager
    async def serving(self, layer: str, rate: float) -> AsyncIterator[Bench]:
        """A fresh server process for this layer and pace, for the time of the block."""
        server = await asyncio.to_thread(self.deployment.start_app, layer=layer, tokens_per_second=rate)
        session: Session | None = None
        try:
            if self.user is None:
                self.user = await asyncio.to_thread(self.deployment.sign_up, server)
            session = session_on(server, self.user)
            yield Bench(server=server, session=session, meter=ProcessMeter(server.process.pid), layer=layer, rate=rate)
        finally:
            if session is not None:
                session.http.close()
            await asyncio.to_thread(self.deployment.stop, server)
            self.note_errors(f"{layer}@{rate:g} #{len(self.results['load_average'])}", server.log())

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
        """The product (and, on the in-memory layer, the references) at each tab count of the group."""
        systems = SYSTEMS if group.with_references else ("product",)
        self.note_load(f"{group.layer}@{group.rate:g}")
        log(f"layer {group.layer}, {group.rate:g} tok/s, tabs {group.tabs}: {', '.join(systems)}")
        async with self.serving(group.layer, group.rate) as bench:
            await self.warm_up(bench, systems)
            for tabs in group.tabs:
                reps = await self.repetitions(bench, systems, tabs)
                for system in systems:
                    layer = group.layer if system == "product" else "-"
                    row = report.summarise(system, layer, group.rate, tabs, reps[system])
                    self.results["configs"].append(row)
                    log(f"  {system:7} {tabs:2} tabs: p50 {row['p50_ms']} p99 {row['p99_ms']} ms, exact {row['exact']}")

    async def warm_up(self, bench: Bench, systems: tuple[str, ...]) -> None:
        """One short unmeasured run per system: imports, connections and caches warm."""
        for system in systems:
            stream = await Stream.open(bench, system, 1)
            await run_streams(bench, [stream], WARMUP_TOKENS)
            await stream.close()

    async def repetitions(self, bench: Bench, systems: tuple[str, ...], tabs: int) -> dict[str, list[RepResult]]:
        """`reps` runs of each system, interleaved so that drift on the machine hits them alike."""
        streams = {system: await Stream.open(bench, system, tabs) for system in systems}
        reps: dict[str, list[RepResult]] = {system: [] for system in systems}
        try:
            for _ in range(self.plan.reps):
                for system in systems:
                    reps[system].append(await run_streams(bench, [streams[system]], self.plan.tokens))
                    if streams[system].refused:  # stuck busy: later runs need a conversation that is not
                        log(f"  {system}: the conversation refused the run (busy); going on with a new one")
                        await streams[system].close()
                        streams[system] = await Stream.open(bench, system, tabs)
                    await asyncio.sleep(0.1)
        finally:
            for stream in streams.values():
                await stream.close()
        return reps

    async def measure_load(self) -> None:
        """Idle memory, scale and saturation: many conversations on one process."""
        plan = self.plan
        for part in plan.load:
            self.note_load(f"load {part.layer}@{part.rate:g}")
            async with self.serving(part.layer, part.rate) as bench:
                await self.warm_up(bench, ("product",))
                if part.idle:
                    log(f"layer {part.layer}: {plan.idle_connections} idle tabs")
                    memory = await idle_memory(bench, plan.idle_connections)
                    self.results["memory"].append({"layer": part.layer, **memory})
                if part.scale:
                    log(f"layer {part.layer}: {plan.scale_conversations} runs at {part.rate:g} tok/s at once")
                    result = await scale(bench, plan.scale_conversations, plan.tokens, plan.scale_reps)
                    self.results["scale"].append(result)
                    log(f"  p99 {result['p99_ms']:.1f} ms, lost {result['lost']}, exact {result['exact']}")
                if part.saturation:
                    log(f"layer {part.layer}: saturation, {part.rate:g} tok/s per run")
                    result = await saturation(bench, list(plan.saturation_totals), plan.saturation_tokens)
                    self.results["saturation"].append(result)
                    log(f"  max {result['max_passing_tokens_per_s']} tok/s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a cut-down matrix, under 2 minutes")
    parser.add_argument("--output", type=Path, default=report.RESULTS_PATH, help="where to write the JSON results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the plan, print the table and the targets, save the JSON."""
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    results: dict[str, Any] = {"quick": plan.quick, "machine": machine(), "skipped": []}
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
    results["duration_s"] = round(time.monotonic() - started, 1)
    report.add_ratios(results["configs"])
    results["targets"] = report.targets(results)
    print(report.table(results["configs"]))
    print("\n".join(report.summary_lines(results)))
    print(f"total {results['duration_s']} s; results in {args.output}")
    report.save(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
