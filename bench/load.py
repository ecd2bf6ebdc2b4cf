"""Many conversations at once on one process: saturation (step the total rate up) and scale."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

from bench.scenarios import Bench, RepResult, Stream, open_streams, run_streams

SATURATION_P99_MS = 100.0
# A step passes only if the model kept its pace: a starved event loop slows the model, not only the relay.
KEPT_PACE = 0.9
# A step passes only if its runs streamed together for at least half of a run's length: a process
# that starts runs slowly spreads them out, and the load it then carries is less than offered.
MIN_OVERLAP = 0.5
TABS_PER_CONVERSATION = 3
# However overloaded the process, the scale run gives up (and counts what is missing as lost) after this.
SCALE_MAX_WAIT = 120.0


def step_failures(rep: RepResult, rate: float, tokens: int) -> list[str]:
    """Why a step fails: p99 at or over 100 ms, text not exact, anything lost, doubled, refused or
    unfinished, the model under 90 % of its pace (a starved event loop slows the model too), or the
    runs streaming together for less than half of a run's length (their starts spread out)."""
    nominal = tokens / rate
    checks = {
        f"p99 {rep.p99_ms:.0f} ms": not rep.p99_ms < SATURATION_P99_MS,
        "text not exact": not rep.exact,
        f"{rep.lost_live} lost": rep.lost_live > 0,
        f"{rep.doubled} doubled": rep.doubled > 0,
        f"{rep.refused} runs refused (busy)": rep.refused > 0,
        f"{rep.unfinished} tabs without done": rep.unfinished > 0,
        f"model at {rep.model_rate:.0f}/{rate:g} tok/s": not rep.model_rate >= KEPT_PACE * rate,
        f"runs together {rep.overlap_s:.1f} of {nominal:.1f} s": not rep.overlap_s >= MIN_OVERLAP * nominal,
    }
    return [reason for reason, failed in checks.items() if failed]


async def _streams_for(bench: Bench, streams: list[Stream], count: int) -> list[Stream]:
    """Grow the pool of open conversations (3 tabs each) to `count`; the first `count` of them.

    A conversation that refused its last run (stuck busy) is replaced: this measures throughput.
    """
    for stream in [s for s in streams if s.refused]:
        await stream.close()
        streams.remove(stream)
    if len(streams) < count:
        streams += await open_streams(bench, "product", count - len(streams), TABS_PER_CONVERSATION)
    return streams[:count]


def _step_record(total: float, conversations: int, rep: RepResult, passed: bool) -> dict[str, Any]:
    return {
        "offered_tokens_per_s": total,
        "conversations": conversations,
        # while every run streamed (a passing step's runs did so for at least half their length)
        "relayed_tokens_per_s": round(conversations * rep.model_rate, 1) if not math.isnan(rep.model_rate) else None,
        "passed": passed,
        **{key: value for key, value in asdict(rep).items() if key != "tabs"},
    }


async def saturation(bench: Bench, totals: list[float], tokens: int) -> dict[str, Any]:
    """Step the total token rate up (more conversations at the server's per-run pace) until a step fails twice."""
    return (await saturation_paired([bench], totals, tokens))[0]


async def saturation_paired(benches: list[Bench], totals: list[float], tokens: int) -> list[dict[str, Any]]:
    """`saturation` on several servers at once, step by step: each step runs on every server still
    passing before the next step starts, so that drift on the machine hits them alike."""
    pools: list[list[Stream]] = [[] for _ in benches]
    steps: list[list[dict[str, Any]]] = [[] for _ in benches]
    best: list[dict[str, Any] | None] = [None for _ in benches]
    going = set(range(len(benches)))
    rate = benches[0].rate
    try:
        for total in (t for t in totals if t >= rate):
            for index in sorted(going):
                bench, streams = benches[index], pools[index]
                conversations = round(total / bench.rate)
                active = await _streams_for(bench, streams, conversations)
                rep = await run_streams(bench, active, tokens)
                failures = step_failures(rep, bench.rate, tokens)
                if failures:  # one retry: a single noisy step must not end the search
                    active = await _streams_for(bench, streams, conversations)
                    rep = await run_streams(bench, active, tokens)
                    failures = step_failures(rep, bench.rate, tokens)
                passed = not failures
                steps[index].append({**_step_record(total, conversations, rep, passed), "failures": failures})
                if passed:
                    best[index] = steps[index][-1]
                else:
                    going.discard(index)
                    for stream in streams:  # an overloaded server's tabs must not load the others' steps
                        await stream.close()
                    streams.clear()
            if not going:
                break
    finally:
        for streams in pools:
            for stream in streams:
                await stream.close()
    return [
        {
            "layer": bench.layer,
            "server": bench.server_name,
            "per_run_tokens_per_s": bench.rate,
            "tokens_per_run": tokens,
            "tabs_per_conversation": TABS_PER_CONVERSATION,
            "max_passing_tokens_per_s": top["relayed_tokens_per_s"] if top else 0.0,
            "max_passing_offered": top["offered_tokens_per_s"] if top else 0.0,
            "cpu_s_per_1k_at_max": top["cpu_s_per_1k_tokens"] if top else None,
            "p99_ms_at_max": top["p99_ms"] if top else None,
            "steps": server_steps,
        }
        for bench, top, server_steps in zip(benches, best, steps, strict=True)
    ]


async def scale(bench: Bench, conversations: int, tokens: int, reps: int) -> dict[str, Any]:
    """`conversations` runs at once, 3 tabs each, at the server's per-run pace: latency and anything lost."""
    bench = replace(bench, max_wait=SCALE_MAX_WAIT)
    streams = await open_streams(bench, "product", conversations, TABS_PER_CONVERSATION)
    try:
        results = [await run_streams(bench, streams, tokens) for _ in range(reps)]
    finally:
        for stream in streams:
            await stream.close()
    worst = max(results, key=lambda r: r.p99_ms)
    return {
        "layer": bench.layer,
        "server": bench.server_name,
        "conversations": conversations,
        "tabs": conversations * TABS_PER_CONVERSATION,
        "per_run_tokens_per_s": bench.rate,
        "reps": [asdict(r) for r in results],
        "p99_ms": sorted(r.p99_ms for r in results)[len(results) // 2],
        "worst_p99_ms": worst.p99_ms,
        "lost": sum(r.lost_live for r in results),
        "doubled": sum(r.doubled for r in results),
        "reordered": sum(r.reordered + r.duplicates for r in results),
        "exact": all(r.exact for r in results),
    }
