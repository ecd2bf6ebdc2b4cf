"""What the benchmark does against one server: runs of N tabs, saturation, scale, idle memory.

A `Stream` is the tabs of one stream: for the product, N tabs on one conversation (one
run, relayed to all of them); for a reference, N tabs each asking for its own stream.
`run_streams` runs several at once and reduces what every tab saw to one `RepResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
from dataclasses import dataclass
from statistics import median

from bench.clients import Tab, TabStats, analyse
from bench.servers import CpuWindow, ProcessMeter
from tests.live_server import Server, Session, ws_headers

SYSTEMS = ("product", "lesson", "floor")
# The latency quantiles each repetition keeps (the charts draw the distribution from them).
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
OPEN_BATCH = 50
DONE_GRACE = 3.0


def prompt(tokens: int) -> str:
    """The offline model's latency probe: `tokens` tokens, each its emission time."""
    return f"stamp {tokens} tokens"


@dataclass
class Bench:
    """One running server and what the clients need to reach it."""

    server: Server
    session: Session
    meter: ProcessMeter
    layer: str
    rate: float
    max_wait: float = 300.0
    server_name: str = "uvicorn"

    def url(self, system: str, conversation_id: int) -> str:
        """The socket of a product conversation, or of a reference."""
        if system == "product":
            return self.server.ws_url(conversation_id)
        return f"ws://127.0.0.1:{self.server.port}/ws/bench/{system}/"

    def timeout(self, tokens: int, load: float = 1.0) -> float:
        """How long a run may take before it counts as lost: generous, but bounded."""
        nominal = tokens / self.rate if self.rate > 0 else tokens / 1000
        return min(self.max_wait, 10 + nominal * 2 * max(1.0, load))


@dataclass
class Stream:
    """The tabs of one stream of one system."""

    system: str
    tabs: list[Tab]
    refused: bool = False

    @classmethod
    async def open(cls, bench: Bench, system: str, count: int) -> Stream:
        """Open `count` tabs: on a new conversation (product) or on the reference's route."""
        conversation = 0
        if system == "product":
            conversation = await asyncio.to_thread(bench.session.new_conversation)
        headers = ws_headers(bench.session, bench.server)
        url = bench.url(system, conversation)
        tabs = await asyncio.gather(*(Tab.open(url, headers) for _ in range(count)))
        return cls(system=system, tabs=list(tabs))

    @property
    def starters(self) -> list[Tab]:
        """The tabs that ask: one for the product's shared stream, every tab for a reference."""
        return self.tabs[:1] if self.system == "product" else self.tabs

    async def close(self) -> None:
        """Close every tab."""
        await asyncio.gather(*(tab.close() for tab in self.tabs))


async def open_streams(bench: Bench, system: str, streams: int, tabs: int) -> list[Stream]:
    """Open many streams, a batch at a time (the server's accept queue is finite)."""
    opened: list[Stream] = []
    batch = max(1, OPEN_BATCH // max(1, tabs))
    for start in range(0, streams, batch):
        count = min(batch, streams - start)
        opened += await asyncio.gather(*(Stream.open(bench, system, tabs) for _ in range(count)))
    return opened


@dataclass
class RepResult:
    """One repetition of a configuration, over every tab of every stream in it."""

    p50_ms: float
    p99_ms: float
    tokens_per_s: float
    model_rate: float
    group_sends_per_token: float
    frames_per_token_per_tab: float
    cpu_s_per_1k_tokens: float
    peak_rss_mib: float
    lost_live: int
    lost: int
    doubled: int
    duplicates: int
    reordered: int
    exact: bool
    refused: int
    unfinished: int
    start_ms: float
    others_cores: float
    client_cores: float
    latency_quantiles_ms: list[float]
    tabs: int
    runs: int
    wall_s: float
    overlap_s: float = math.nan
    """How long every run of the repetition streamed at once: the earliest last token's model stamp
    minus the latest first token's. Runs whose starts spread over more than their length never
    stream together, whatever their count suggests."""
    aggregate_tokens_per_s: float = math.nan
    """Every run's tokens over the span from the first run's first token to the last run's last."""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (nan when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _pace(first: float | None, last: float | None, count: int) -> float:
    if first is None or last is None or last <= first or count < 2:
        return math.nan
    return (count - 1) / (last - first)


async def run_streams(bench: Bench, streams: list[Stream], tokens: int) -> RepResult:
    """Start one run per starter tab, wait for every tab's `done`, measure the server meanwhile.

    The clients' garbage collector waits until the run is over: its pauses would show as latency.
    """
    gc.collect()
    gc.disable()
    try:
        return await _run_streams(bench, streams, tokens)
    finally:
        gc.enable()


async def _run_streams(bench: Bench, streams: list[Stream], tokens: int) -> RepResult:
    for stream in streams:
        for tab in stream.tabs:
            tab.begin_run()
    bench.meter.reset_peak()
    window = CpuWindow.open(bench.meter)
    starters = [tab for stream in streams for tab in stream.starters]
    started = await asyncio.gather(*(tab.start(prompt(tokens)) for tab in starters))
    for stream in streams:  # a product conversation that refused the run (busy) streams nothing to wait for
        stream.refused = stream.system == "product" and not started[starters.index(stream.starters[0])]
    waiting = [tab for stream in streams if not stream.refused for tab in stream.tabs]
    await _wait_all(waiting, "answer_seen", bench.timeout(tokens, load=len(starters) / 4))
    await _wait_all(waiting, "finished", DONE_GRACE)  # `done` follows `final` at once, or it was lost
    window.close()
    every_tab = [tab for stream in streams for tab in stream.tabs]
    stats = [analyse(tab.run, tokens) for tab in every_tab]
    refused = len(started) - sum(started)
    peak = bench.meter.peak_rss()
    return _reduce(stats, window, runs=len(starters), peak=peak, tokens=tokens, refused=refused)


async def _wait_all(tabs: list[Tab], event: str, seconds: float) -> None:
    """Wait until every tab's `event` is set, at most `seconds`."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(getattr(tab, event).wait() for tab in tabs)), seconds)


def _reduce(stats: list[TabStats], window: CpuWindow, *, runs: int, peak: int, tokens: int, refused: int) -> RepResult:
    latencies = [value for tab in stats for value in tab.latencies]
    delivered = [_pace(s.first_receipt, s.last_receipt, s.tokens) for s in stats]
    paces = [_pace(s.first_stamp, s.last_stamp, s.tokens) for s in stats]
    starts = [s.start_s for s in stats if s.start_s is not None]
    firsts = [s.first_stamp for s in stats if s.first_stamp is not None]
    lasts = [s.last_stamp for s in stats if s.last_stamp is not None]
    overlap = min(lasts) - max(firsts) if firsts and lasts else math.nan
    span = max(lasts) - min(firsts) if firsts and lasts else math.nan
    aggregate = (runs - refused) * tokens / span if span and span > 0 else math.nan
    return RepResult(
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        tokens_per_s=_median([d for d in delivered if not math.isnan(d)]),
        model_rate=_median([p for p in paces if not math.isnan(p)]),
        group_sends_per_token=sum(s.token_frames for s in stats) / (len(stats) * tokens),
        frames_per_token_per_tab=sum(s.frames for s in stats) / (len(stats) * tokens),
        cpu_s_per_1k_tokens=window.server_cpu / (runs * tokens) * 1000,
        peak_rss_mib=peak / 2**20,
        lost_live=sum(s.lost_live for s in stats),
        lost=sum(s.lost for s in stats),
        doubled=sum(s.doubled for s in stats),
        duplicates=sum(s.duplicates for s in stats),
        reordered=sum(s.reordered for s in stats),
        exact=all(s.exact for s in stats),
        refused=refused,
        unfinished=sum(not s.done for s in stats),
        start_ms=_median(starts) * 1000,
        others_cores=window.others_cores,
        client_cores=window.client_cpu / max(window.wall, 1e-9),
        latency_quantiles_ms=[round(percentile(latencies, q) * 1000, 4) for q in QUANTILES],
        tabs=len(stats),
        runs=runs,
        wall_s=window.wall,
        overlap_s=overlap,
        aggregate_tokens_per_s=aggregate,
    )


def _median(values: list[float]) -> float:
    return median(values) if values else math.nan


async def idle_memory(bench: Bench, connections: int, per_conversation: int = 5) -> dict[str, float]:
    """Resident memory per idle connected tab: RSS after `connections` sockets minus before, over their count."""
    conversations = math.ceil(connections / per_conversation)
    ids = [await asyncio.to_thread(bench.session.new_conversation) for _ in range(conversations)]
    await asyncio.sleep(1)
    before = bench.meter.rss()
    headers = ws_headers(bench.session, bench.server)
    urls = [bench.url("product", ids[n % conversations]) for n in range(connections)]
    tabs: list[Tab] = []
    for start in range(0, connections, OPEN_BATCH):
        tabs += await asyncio.gather(*(Tab.open(url, headers) for url in urls[start : start + OPEN_BATCH]))
    await asyncio.sleep(1)
    after = bench.meter.rss()
    await asyncio.gather(*(tab.close() for tab in tabs))
    return {
        "connections": connections,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_tab": (after - before) / connections / 1024,
    }
