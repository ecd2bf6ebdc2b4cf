"""The benchmark harness, end to end on a tiny scale: one process per server (uvicorn, the production
server, and daphne), the in-memory layer, 30 tokens.

It proves that `bench` still measures what it says (real sockets, exact text, stamps turned
into latencies) on both servers, that its checks catch a lost, a doubled and a reordered event,
and that the server comparison, the profile's classification and the charts work on results
of the shape a run writes.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace

import pytest

from bench.charts import draw_all
from bench.clients import RunView, TabStats, analyse
from bench.load import step_failures
from bench.profile import classify
from bench.report import add_ratios, server_rows, server_table, summarise, table, targets
from bench.scenarios import QUANTILES, SYSTEMS, Bench, RepResult, Stream, _reduce, run_streams
from bench.servers import BenchDeployment, CpuWindow, ProcessMeter

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


async def measure(deployment: BenchDeployment, server_name: str) -> dict[str, RepResult]:
    server = await asyncio.to_thread(deployment.start_app, layer="memory", tokens_per_second=0, server=server_name)
    session = await asyncio.to_thread(deployment.sign_up, server)
    meter = ProcessMeter(server.process.pid)
    bench = Bench(server=server, session=session, meter=meter, layer="memory", rate=0, server_name=server_name)
    results = {}
    for system in SYSTEMS:
        stream = await Stream.open(bench, system, TABS)
        results[system] = await run_streams(bench, [stream], TOKENS)
        await stream.close()
    return results


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server_name", ["uvicorn", "daphne"])
def test_the_bench_measures_every_system_end_to_end(server_name):
    deployment = BenchDeployment.prepare()
    try:
        results = asyncio.run(measure(deployment, server_name))
    finally:
        deployment.close()
    for system, rep in results.items():
        assert rep.exact, (system, rep)
        assert rep.lost_live == rep.lost == rep.doubled == rep.duplicates == rep.reordered == 0, (system, rep)
        assert rep.tabs == TABS and rep.runs == (1 if system == "product" else TABS)
        assert 0 <= rep.p50_ms <= rep.p99_ms < 5000, (system, rep)
        # CPU time is counted in clock ticks (10 ms): a reference's 30 tokens may take less than one.
        assert math.isfinite(rep.cpu_s_per_1k_tokens) and rep.cpu_s_per_1k_tokens >= 0 and rep.peak_rss_mib > 10
        assert not math.isnan(rep.tokens_per_s)
        # How long the runs streamed together depends on this machine for the references (each tab
        # asks for a run of its own: with the model at full speed, two runs of 30 tokens may well not
        # overlap at all), so only what holds on any machine is checked here; the overlap's
        # computation is checked on runs made to overlap, or not, below.
        assert math.isfinite(rep.overlap_s) and math.isfinite(rep.aggregate_tokens_per_s), (system, rep)
        assert rep.aggregate_tokens_per_s > 0, (system, rep)
        span = rep.runs * TOKENS / rep.aggregate_tokens_per_s  # first token of any run to last of any
        rounding = span * 1e-9  # `span` is recomputed from a quotient
        assert 0 < span < 60 and -span - rounding <= rep.overlap_s <= span + rounding, (system, rep)
        if system == "product":  # one run relayed to every tab: the tabs streamed together for all of it
            assert rep.overlap_s > 0 and math.isclose(rep.overlap_s, span, rel_tol=1e-9), (system, rep)
        assert len(rep.latency_quantiles_ms) == len(QUANTILES) and rep.latency_quantiles_ms == sorted(
            rep.latency_quantiles_ms
        )
    assert sum(rep.cpu_s_per_1k_tokens for rep in results.values()) > 0  # the server's CPU is measured
    assert results["lesson"].group_sends_per_token == 1.0
    rows = [summarise(system, "memory", 0, TABS, [rep]) for system, rep in results.items()]
    add_ratios(rows)
    assert rows[0]["p99_vs_lesson"] is not None and rows[0]["p99_vs_floor"] is not None
    assert "product" in table(rows)


def repetition(**changes) -> RepResult:
    """A repetition of 10 runs at 100 tok/s, 300 tokens each, that passes every check of a step."""
    passing = RepResult(
        p50_ms=5.0, p99_ms=40.0, tokens_per_s=100.0, model_rate=100.0, group_sends_per_token=0.8,
        frames_per_token_per_tab=0.8, cpu_s_per_1k_tokens=0.9, peak_rss_mib=170.0, lost_live=0, lost=0, doubled=0,
        duplicates=0, reordered=0, exact=True, refused=0, unfinished=0, start_ms=50.0, others_cores=0.0,
        client_cores=0.2, latency_quantiles_ms=[], tabs=30, runs=10, wall_s=3.2, overlap_s=2.9,
        aggregate_tokens_per_s=970.0,
    )  # fmt: skip
    return replace(passing, **changes)


def test_a_saturation_step_fails_when_its_runs_did_not_stream_together():
    assert step_failures(repetition(), 100.0, 300) == []
    # runs started one after another (a slow start path): never all streaming at once
    assert step_failures(repetition(overlap_s=-0.4), 100.0, 300) == ["runs together -0.4 of 3.0 s"]
    assert step_failures(repetition(overlap_s=1.4), 100.0, 300) == ["runs together 1.4 of 3.0 s"]
    assert step_failures(repetition(overlap_s=1.6), 100.0, 300) == []
    assert step_failures(repetition(p99_ms=120.0, model_rate=80.0), 100.0, 300) == [
        "p99 120 ms",
        "model at 80/100 tok/s",
    ]


def run_seen(first: float | None, last: float | None, tokens: int = 300) -> TabStats:
    """A tab's account of an exact run whose tokens the model stamped from `first` to `last`."""
    return TabStats(
        latencies=[0.005] * tokens if first is not None else [], frames=tokens, token_frames=tokens,
        tokens=tokens if first is not None else 0, lost_live=0, lost=0, doubled=0, duplicates=0, reordered=0,
        exact=True, done=True, start_s=0.05, first_receipt=first, last_receipt=last, first_stamp=first,
        last_stamp=last,
    )  # fmt: skip


def reduced(*tabs: TabStats, runs: int, tokens: int = 300) -> RepResult:
    """What a repetition reports for these tabs' accounts: the reduction `run_streams` makes."""
    window = CpuWindow(meter=None, started=0.0, server_before=0.0, own_before=0.0, busy_before=0.0, wall=10.0)
    return _reduce(list(tabs), window, runs=runs, peak=200 * 2**20, tokens=tokens, refused=0)


def together(reasons: list[str]) -> list[str]:
    return [reason for reason in reasons if reason.startswith("runs together")]


def test_the_overlap_of_runs_is_how_long_they_all_streamed_at_once():
    # Two runs of 300 tokens at 100 tok/s (2.99 s from first token to last), started 1 s apart:
    # together from the second's first token (1.0) to the first's last (2.99).
    overlapping = reduced(run_seen(0.0, 2.99), run_seen(1.0, 3.99), runs=2)
    assert math.isclose(overlapping.overlap_s, 1.99)
    assert math.isclose(overlapping.aggregate_tokens_per_s, 600 / 3.99)  # every token over 0.0 .. 3.99
    assert step_failures(overlapping, 100.0, 300) == []  # together for more than half a run (1.5 s)

    # The second started after the first ended: never together, by the gap between them.
    disjoint = reduced(run_seen(0.0, 2.99), run_seen(4.0, 6.99), runs=2)
    assert math.isclose(disjoint.overlap_s, -1.01)
    assert math.isclose(disjoint.aggregate_tokens_per_s, 600 / 6.99)
    assert together(step_failures(disjoint, 100.0, 300)) == ["runs together -1.0 of 3.0 s"]

    # One started as the other ended: together for no time at all.
    touching = reduced(run_seen(0.0, 2.99), run_seen(2.99, 5.98), runs=2)
    assert touching.overlap_s == 0.0
    assert together(step_failures(touching, 100.0, 300)) == ["runs together 0.0 of 3.0 s"]

    # The latest start and the earliest end decide, whichever runs they belong to.
    nested = reduced(run_seen(0.0, 5.0), run_seen(1.0, 2.5), run_seen(2.0, 4.0), runs=3)
    assert math.isclose(nested.overlap_s, 0.5)
    assert together(step_failures(nested, 100.0, 300)) == ["runs together 0.5 of 3.0 s"]

    # One run relayed to three tabs (the product): they streamed together for the whole run.
    shared = reduced(run_seen(10.0, 12.99), run_seen(10.0, 12.99), run_seen(10.0, 12.99), runs=1)
    assert math.isclose(shared.overlap_s, 2.99) and math.isclose(shared.aggregate_tokens_per_s, 300 / 2.99)

    # A tab that saw no token does not count; no token at all: no overlap to speak of, and the step fails.
    assert math.isclose(reduced(run_seen(0.0, 2.99), run_seen(None, None), runs=1).overlap_s, 2.99)
    silent = reduced(run_seen(None, None), run_seen(None, None), runs=2)
    assert math.isnan(silent.overlap_s) and math.isnan(silent.aggregate_tokens_per_s)
    assert together(step_failures(silent, 100.0, 300)) == ["runs together nan of 3.0 s"]


def saturation(server: str, passed: list[float], failed: float) -> dict:
    steps = [
        {"offered_tokens_per_s": t, "relayed_tokens_per_s": t, "passed": True, "p99_ms": 10.0, "lost_live": 0}
        | {"cpu_s_per_1k_tokens": 0.5 if server == "uvicorn" else 0.6}
        for t in passed
    ]
    steps.append(
        {"offered_tokens_per_s": failed, "relayed_tokens_per_s": failed * 0.8, "passed": False, "p99_ms": 300.0}
        | {"lost_live": 0, "cpu_s_per_1k_tokens": 0.7}
    )
    top = steps[-2]
    return {
        "layer": "memory",
        "server": server,
        "per_run_tokens_per_s": 100,
        "max_passing_tokens_per_s": top["relayed_tokens_per_s"],
        "max_passing_offered": top["offered_tokens_per_s"],
        "cpu_s_per_1k_at_max": top["cpu_s_per_1k_tokens"],
        "p99_ms_at_max": top["p99_ms"],
        "steps": steps,
    }


def test_the_server_comparison_targets_and_charts_read_a_runs_results(tmp_path):
    rep = {"latency_quantiles_ms": [0.1 * (n + 1) for n in range(len(QUANTILES))]}
    rows = [
        {"system": system, "layer": "memory" if system == "product" else "-", "rate": 60, "tabs": 3}
        | {"server": "uvicorn", "p50_ms": 1.0, "p99_ms": 2.0, "cpu_s_per_1k_tokens": 1.0, "repetitions": [rep]}
        for system in SYSTEMS
    ]
    results = {
        "configs": rows,
        "saturation": [saturation("uvicorn", [1000, 2000, 3000], 4000), saturation("daphne", [1000, 2000], 3000)],
        "ttft": {
            "configs": {"sqlite_memory": {"product_share_p50_ms": 2.0, "cold_extra_ms": 30.0}},
            "targets": [{"name": "share", "value": 2.0, "target": 3.0, "unit": "ms", "met": True}],
        },
    }
    compared = {row["server"]: row for row in server_rows(results)}
    assert compared["uvicorn"]["max_tokens_per_s"] == 3000 and compared["daphne"]["max_tokens_per_s"] == 2000
    assert compared["uvicorn"]["common_offered"] == 2000 and compared["uvicorn"]["cpu_at_common"] == 0.5
    assert compared["uvicorn"]["p99_60x3_ms"] == 2.0 and compared["daphne"]["p99_60x3_ms"] is None
    assert "daphne" in server_table(results)
    verdicts = {t["target"].split(":")[0]: t["met"] for t in targets(results)}
    assert verdicts["saturation (memory, uvicorn, 100 tok/s per run, 3 tabs)"] is True
    assert verdicts["saturation (memory, daphne, 100 tok/s per run, 3 tabs)"] is False
    assert verdicts["first token"] is True
    written = draw_all(results, tmp_path)
    assert {path.name for path in written} == {
        "bench-latency.png",
        "bench-throughput.png",
        "bench-servers.png",
        "bench-ttft.png",
    }
    assert all(path.stat().st_size > 10_000 for path in written)


def test_the_profile_sorts_samples_by_stage_and_library():
    site = "/venv/lib/python3.11/site-packages"
    collapsed = "\n".join(
        [
            f"main (app.py);publish_event (/work/conversations/runs.py);dumps ({site}/../json/__init__.py) 3",
            f"main (app.py);send (/work/conversations/consumers.py);write ({site}/websockets/legacy/framing.py) 5",
            f"main (app.py);astream ({site}/langchain_core/language_models/chat_models.py) 2",
        ]
    )
    stages, libraries, total = classify(collapsed)
    assert total == 10
    assert stages["server: WebSocket framing and socket I/O"] == 5
    assert stages["relay: publish_event, event log (runs.py)"] == 3
    assert libraries["json"] == 3 and libraries["websockets"] == 5 and libraries["langchain"] == 2
