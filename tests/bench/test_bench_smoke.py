"""The benchmark harness, end to end on a tiny scale: one daphne process, the in-memory layer, 30 tokens.

It proves that `bench` still measures what it says (real sockets, exact text, stamps turned
into latencies) and that its checks catch a lost, a doubled and a reordered event.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from bench.clients import RunView, analyse
from bench.report import add_ratios, summarise, table
from bench.scenarios import SYSTEMS, Bench, RepResult, Stream, run_streams
from bench.servers import BenchDeployment, ProcessMeter

TOKENS = 30
TABS = 2


def stamped_run(texts: list[str], final: str, order: list[int] | None = None) -> RunView:
    """A tab's view of a run whose token events carry `texts`, received now, in `order` of seq."""
    now = time.monotonic()
    events = [{"type": "run_started", "seq": 1}]
    events += [{"type": "token", "seq": n + 2, "text": text} for n, text in enumerate(texts)]
    events += [{"type": "final", "seq": len(texts) + 2, "content": final}, {"type": "done", "seq": len(texts) + 3}]
    view = RunView()
    for index in order or range(len(events)):
        event = events[index]
        view.live[event["seq"]] = (now, event)
    return view


def stamps(count: int) -> list[str]:
    start = time.monotonic() - 0.01
    return [f"{start + n / 1e4:.6f} " for n in range(count)]


def test_analysis_accepts_an_exact_run_and_measures_its_latency():
    texts = stamps(5)
    result = analyse(stamped_run(texts, "".join(texts)), 5)
    assert result.exact and result.lost == 0 and result.doubled == 0
    assert len(result.latencies) == 5 and all(0 < value < 1 for value in result.latencies)


def test_analysis_catches_a_lost_a_doubled_and_a_reordered_token():
    texts = stamps(5)
    answer = "".join(texts)
    lost = stamped_run(texts[:2] + texts[3:], answer)
    assert not analyse(lost, 5).exact and analyse(lost, 5).lost == 1
    doubled = stamped_run([*texts[:3], texts[2], *texts[3:]], answer)
    assert not analyse(doubled, 5).exact and analyse(doubled, 5).doubled == 1
    swapped = stamped_run([texts[1], texts[0], *texts[2:]], answer)
    assert not analyse(swapped, 5).exact


async def measure(deployment: BenchDeployment) -> dict[str, RepResult]:
    server = await asyncio.to_thread(deployment.start_app, layer="memory", tokens_per_second=0)
    session = await asyncio.to_thread(deployment.sign_up, server)
    bench = Bench(server=server, session=session, meter=ProcessMeter(server.process.pid), layer="memory", rate=0)
    results = {}
    for system in SYSTEMS:
        stream = await Stream.open(bench, system, TABS)
        results[system] = await run_streams(bench, [stream], TOKENS)
        await stream.close()
    return results


@pytest.mark.timeout(60)
def test_the_bench_measures_every_system_end_to_end():
    deployment = BenchDeployment.prepare()
    try:
        results = asyncio.run(measure(deployment))
    finally:
        deployment.close()
    for system, rep in results.items():
        assert rep.exact, (system, rep)
        assert rep.lost_live == rep.lost == rep.doubled == rep.duplicates == rep.reordered == 0, (system, rep)
        assert rep.tabs == TABS and rep.runs == (1 if system == "product" else TABS)
        assert 0 <= rep.p50_ms <= rep.p99_ms < 5000, (system, rep)
        assert rep.cpu_s_per_1k_tokens > 0 and rep.peak_rss_mib > 10
        assert not math.isnan(rep.tokens_per_s)
    assert results["lesson"].group_sends_per_token == 1.0
    rows = [summarise(system, "memory", 0, TABS, [rep]) for system, rep in results.items()]
    add_ratios(rows)
    assert rows[0]["p99_vs_lesson"] is not None and rows[0]["p99_vs_floor"] is not None
    assert "product" in table(rows)
