"""Paired saturation of product variants: `python -m bench.experiment LABEL=VAR:value+VAR:value ...`.

Each argument is a variant: a label, `=`, then `VAR:value` pairs joined by `+` (`base=` for
none), for instance `relay20=RELAY_MIN_INTERVAL_MS:20` or `adaptive=BENCH_RELAY_ADAPTIVE:5,1,40`
(see `bench.asgi`'s experiment switches). `--server` picks servers of `bench.servers.SERVERS`
(repeatable, crossed with the variants) and `--layer` the channel layer. Every (server,
variant) gets its own process, and the saturation steps them up together
(`bench.load.saturation_paired`), so that noise on the machine hits them alike; `--rounds`
repeats the whole comparison with fresh processes. Used to measure proposed product changes
before the product makes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from statistics import median
from typing import Any

from bench.load import saturation_paired
from bench.plan import QUICK
from bench.run import Runner, log
from bench.servers import PRODUCTION_SERVER, BenchDeployment, flush_redis

TOTALS = (500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 8000)
PER_RUN = 100.0


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`label=VAR:value+VAR:value` as (label, env)."""
    label, _, pairs = text.partition("=")
    return label, dict(pair.split(":", 1) for pair in pairs.split("+") if pair)


async def compare(
    variants: list[tuple[str, dict[str, str]]], servers: list[str], layer: str, tokens: int, rounds: int
) -> list[dict[str, Any]]:
    """The saturation of every (server, variant), paired step by step, `rounds` times."""
    deployment = BenchDeployment.prepare()
    runner = Runner(QUICK, deployment)
    found: list[dict[str, Any]] = []
    try:
        for round_ in range(rounds):
            if layer != "memory":
                await asyncio.to_thread(flush_redis)
            async with AsyncExitStack() as stack:
                benches = []
                for server in servers:
                    for label, env in variants:
                        bench = await stack.enter_async_context(runner.serving(layer, PER_RUN, server, env))
                        benches.append(replace(bench, server_name=f"{server}/{label}"))
                for bench in benches:
                    await runner.warm_up(bench, ("product",))
                for result in await saturation_paired(benches, list(TOTALS), tokens):
                    result["round"] = round_
                    log(
                        f"  round {round_} {result['server']:28} max {result['max_passing_tokens_per_s']} tok/s, "
                        f"p99 {result['p99_ms_at_max']} ms, cpu {result['cpu_s_per_1k_at_max']} s/1k there"
                    )
                    found.append(result)
    finally:
        if runner.user is not None:
            runner.user.http.close()
        deployment.close()
    return found


def main(argv: list[str] | None = None) -> int:
    """Compare the variants; print the median maximum of each over the rounds."""
    parser = argparse.ArgumentParser(prog="python -m bench.experiment", description=__doc__)
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--server", action="append", default=[])
    parser.add_argument("--layer", default="memory")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variants]
    results = asyncio.run(compare(variants, args.server or [PRODUCTION_SERVER], args.layer, args.tokens, args.rounds))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_name.setdefault(result["server"], []).append(result)
    for name, runs in by_name.items():
        best = [r["max_passing_tokens_per_s"] for r in runs]
        print(f"{name:30} max tok/s per round {best}, median {median(best):.0f}")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
