"""Time to first token: what the product adds between a tab's send and the model being asked.

For each configuration (SQLite + in-memory layer; PostgreSQL + Redis pubsub) a local
OpenAI-compatible server (`tests.fake_openai.FakeOpenAI`, in a process of its own: `ModelServer`)
answers every request at once and stamps when the request arrived and when it wrote its first
event. It has its own process, as a real model server would, so that its stamps never wait for
this process's interpreter lock (held while it reads the tabs' frames). The product runs in a fresh server process
(`tests.live_server`: uvicorn, or daphne with `TEST_ASGI_SERVER=daphne`) pointed at it
(`OPENAI_BASE_URL`), with two tabs open on a conversation
that already holds a few answered turns (seeded through the product by an earlier process, so that
the measured one starts cold). Per send, all on one `time.monotonic()` clock (CLOCK_MONOTONIC,
shared by every process):

- *product share* = request received by the model server − send frame written by the tab: what the
  product does before the model is asked (store the message, load the history, build and send the
  request);
- *send → first frame* = the first `token` frame read by each tab − send;
- *model → first frame* = that frame − the model server's first event.

The first send after the process started is *cold*; then come the warm sends, in the same
conversation (its history grows to `AGENT_HISTORY_MESSAGES`). After each warm send two *direct*
clients send the product's own last request to the same server: the `openai` package (one
`AsyncOpenAI` kept for the run, as `langchain-openai` uses it), and a bare `httpx` client. Their
request → first chunk is the reference; the `openai` client's request → received is its own share.
Then the *LangChain reference*: a bare `ChatOpenAI.bind_tools(...).astream(...)` with the product's
request's model, tools and messages; the *share over LangChain* is each tab's send → first frame −
that call → first chunk. Each warm send's stages (`SEGMENTS`) are timed from the tab's stamps, the
product's (its `run_finished` log line's `stages_ms`) and the model server's.
Each configuration starts the process `Plan.starts` times (one cold sample each) and pools the warm
sends. The load average is recorded: on a shared machine it says how far to trust the run.

`python -m bench.ttft [--quick] [--output PATH]` runs it alone and prints `table(results)`;
`ttft_scenario(quick, log)` is what `bench.run` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median
from typing import Any
from uuid import uuid4

from bench.clients import Tab
from bench.servers import PRODUCT_ENV, REDIS_URL, BenchDeployment, flush_redis, redis_available
from tests.fake_openai import FakeOpenAI, RequestTiming, StreamResponse, tool_calls_chunks
from tests.live_server import Server, Session, ws_headers
from tests.services import POSTGRES_URL, _reachable

PRODUCT_APP = "chatsite.asgi:application"
CONFIGS = ("sqlite_memory", "postgres_redis")
LABELS = {"sqlite_memory": "SQLite + in-memory", "postgres_redis": "PostgreSQL + Redis"}
SHARE_TARGET_MS = {"sqlite_memory": 2.0, "postgres_redis": 5.0}
"""The product's share over the bare LangChain call (send → first frame − `astream` → first chunk)."""
SEGMENTS = (
    ("socket", "sent", "received"),
    ("checks", "received", "checked"),
    ("store", "checked", "stored"),
    ("run start", "stored", "started"),
    ("to the client", "started", "request"),
    ("request out", "request", "model_received"),
    ("model", "model_received", "model_first_event"),
    ("first chunk", "model_first_event", "first_chunk"),
    ("relay", "first_chunk", "first_frame"),
    ("to the tab", "first_frame", "tab_frame"),
)
"""A send's stages, each between two stamps: the tab's (`sent`, `tab_frame`), the product's
(`agent_runtime.stages`, from its `run_finished` log line) and the model server's."""
COLD_EXTRA_TARGET_MS = 50.0
TABS = 2
SEED_TURNS = 3
"""Answered turns each measured conversation holds before its process starts (6 messages)."""
RUN_TIMEOUT = 30.0
PAUSE = 0.05
ANSWER_FRAGMENTS = ['{"answer": "', "The answer", " is 42", ", as the tools", ' found.", "tools_used": []}']


class ModelServer:
    """`FakeOpenAI` answering with `answer()`, in a child process; `base_url`, and its `timings` and
    `requests` so far (each read asks the child)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # this process has threads: no fork
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_model_server_main, args=(child,), name="ttft-model", daemon=True)

    def __enter__(self) -> ModelServer:
        self._process.start()
        if not self._connection.poll(60):
            raise RuntimeError("the model server process did not start")
        self.base_url: str = self._connection.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._connection.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def _ask(self, what: str) -> Any:
        self._connection.send(what)
        return self._connection.recv()

    @property
    def timings(self) -> list[RequestTiming]:
        """Every completions request so far: when it arrived, when its first event left."""
        return self._ask("timings")

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every completions request's JSON body so far."""
        return self._ask("requests")


def _model_server_main(connection: Any) -> None:
    """The child: serve, and answer the parent's questions until told to stop."""
    with FakeOpenAI(default=answer()) as fake:
        connection.send(fake.base_url)
        while True:
            try:
                what = connection.recv()
            except EOFError:
                return
            if what == "stop":
                return
            connection.send(list(fake.timings) if what == "timings" else list(fake.requests))


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    starts: int
    warm_per_start: int


QUICK = Plan(starts=3, warm_per_start=5)
FULL = Plan(starts=4, warm_per_start=10)


def answer() -> StreamResponse:
    """The model's answer to every request: a short `final_answer`, all at once."""
    return StreamResponse(tool_calls_chunks([("call_ttft", "final_answer", ANSWER_FRAGMENTS)]))


@dataclass
class Send:
    """One send through the product, as the clients and the model server saw it."""

    sent: float
    timing: RequestTiming | None
    first_frames: list[float | None]
    done: bool
    requests: int = 1
    run_id: str | None = None
    stamps: dict[str, float] = field(default_factory=dict)
    """The product's stage stamps (monotonic seconds), read from its log line for the run."""

    @property
    def failure(self) -> str | None:
        """Why this send cannot be counted, or None."""
        if self.requests != 1:
            return f"{self.requests} model requests"
        if not self.done:
            return "a tab got no done"
        if any(t is None for t in self.first_frames):
            return "a tab got no token"
        return None

    @property
    def share_ms(self) -> float | None:
        """Request received by the model server − send."""
        return None if self.timing is None else (self.timing.received - self.sent) * 1000

    @property
    def first_frame_ms(self) -> list[float]:
        """Per tab: first `token` frame − send."""
        return [(t - self.sent) * 1000 for t in self.first_frames if t is not None]

    def segments_ms(self) -> dict[str, list[float]]:
        """Per `SEGMENTS` name: its length (one per tab for the last), when both ends were stamped."""
        if self.timing is None or not self.stamps:
            return {}
        points: dict[str, float] = {"sent": self.sent, **self.stamps, "model_received": self.timing.received}
        if self.timing.first_event is not None:
            points["model_first_event"] = self.timing.first_event
        lengths: dict[str, list[float]] = {}
        for name, start, end in SEGMENTS:
            if end == "tab_frame":
                ends = [t for t in self.first_frames if t is not None]
            else:
                ends = [points[end]] if end in points else []
            if start in points and ends:
                lengths[name] = [(t - points[start]) * 1000 for t in ends]
        return lengths

    @property
    def model_to_frame_ms(self) -> list[float]:
        """Per tab: first `token` frame − the model server's first event."""
        if self.timing is None or self.timing.first_event is None:
            return []
        return [(t - self.timing.first_event) * 1000 for t in self.first_frames if t is not None]


@dataclass
class Samples:
    """Every measurement of one configuration, in milliseconds."""

    share: list[float] = field(default_factory=list)
    first_frame: list[float] = field(default_factory=list)
    model_to_frame: list[float] = field(default_factory=list)
    cold_share: list[float] = field(default_factory=list)
    cold_first_frame: list[float] = field(default_factory=list)
    direct_first_token: list[float] = field(default_factory=list)
    direct_share: list[float] = field(default_factory=list)
    http_first_token: list[float] = field(default_factory=list)
    langchain_first_token: list[float] = field(default_factory=list)
    langchain_share: list[float] = field(default_factory=list)
    over_langchain: list[float] = field(default_factory=list)
    """Per warm send and tab: send → first frame − the bare LangChain call → first chunk after it."""
    segments: dict[str, list[float]] = field(default_factory=dict)
    per_start_share_p50: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Sends that could not be counted."""
        return sum(self.failures.values())

    def add(self, send: Send, *, cold: bool) -> None:
        """Count one send (one that `Send.failure` explains counts as failed, by reason)."""
        reason = send.failure
        if reason is not None:
            self.failures[reason] = self.failures.get(reason, 0) + 1
            return
        if cold:
            self.cold_share.append(send.share_ms)
            self.cold_first_frame.append(max(send.first_frame_ms))
            return
        self.share.append(send.share_ms)
        self.first_frame.extend(send.first_frame_ms)
        self.model_to_frame.extend(send.model_to_frame_ms)
        for name, lengths in send.segments_ms().items():
            self.segments.setdefault(name, []).extend(lengths)


def percentile(values: list[float], fraction: float) -> float | None:
    """The value below which `fraction` of `values` lie (nearest rank); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Product:
    """One configuration's deployment: seeded conversations, and fresh processes to measure."""

    def __init__(self, name: str, fake: ModelServer, log: Callable[[str], None]) -> None:
        self.name = name
        self.fake = fake
        self.log = log
        self.redis = name == "postgres_redis"
        env = {
            **PRODUCT_ENV,
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_MAX_RETRIES": "0",
            "REDIS_CHANNEL_LAYER": "pubsub",
            "LOG_LEVEL": "INFO",  # as deployed; the run's log line carries its stage stamps
        }
        self.deployment = BenchDeployment.create(
            database_url=POSTGRES_URL if self.redis else None,
            redis_url=REDIS_URL if self.redis else "",
            extra_env=env,
        )
        self.session: Session | None = None

    def start(self) -> Server:
        """A fresh product process (Redis flushed first)."""
        if self.redis:
            flush_redis()
        return self.deployment.start_server(app=PRODUCT_APP)

    def stop(self, server: Server) -> None:
        """Stop one process."""
        self.deployment.stop(server)

    def close(self) -> None:
        """Stop everything and drop the database."""
        self.deployment.close()
        if self.redis:
            flush_redis()

    async def seed(self, count: int) -> list[int]:
        """`count` conversations, each with `SEED_TURNS` answered turns, made through the product by a
        process of its own (stopped before anything is measured)."""
        server = await asyncio.to_thread(self.start)
        try:
            self.session = session = await asyncio.to_thread(self.deployment.sign_up, server)
            conversations = [await asyncio.to_thread(session.new_conversation) for _ in range(count)]
            for conversation in conversations:
                tab = await Tab.open(server.ws_url(conversation), ws_headers(session, server))
                try:
                    for turn in range(SEED_TURNS):
                        tab.begin_run()
                        await tab.connection.send(_send_frame(f"Earlier question {turn + 1}: what is {turn} + 1?"))
                        await asyncio.wait_for(tab.finished.wait(), RUN_TIMEOUT)
                        await asyncio.sleep(PAUSE)
                finally:
                    await tab.close()
            return conversations
        finally:
            await asyncio.to_thread(self.stop, server)


def _send_frame(content: str) -> str:
    return json.dumps({"type": "send", "content": content, "client_id": uuid4().hex})


def _first_token_frame(tab: Tab) -> float | None:
    times = [t for _seq, (t, event) in sorted(tab.run.live.items()) if event.get("type") == "token"]
    return times[0] if times else None


async def product_send(tabs: list[Tab], fake: ModelServer, content: str) -> Send:
    """Send from the first tab; wait until every tab has `done`."""
    for tab in tabs:
        tab.begin_run()
    before = len(fake.timings)
    frame = _send_frame(content)
    sent = time.monotonic()
    await tabs[0].connection.send(frame)
    done = True
    for tab in tabs:
        try:
            await asyncio.wait_for(tab.finished.wait(), RUN_TIMEOUT)
        except TimeoutError:
            done = False
    done = done and not any(tab.closed for tab in tabs)
    timings = fake.timings[before:]
    run_ids = {event.get("run_id") for _t, event in tabs[0].run.live.values()} - {None}
    return Send(
        sent=sent,
        timing=timings[0] if len(timings) == 1 else None,
        first_frames=[_first_token_frame(tab) for tab in tabs],
        done=done,
        requests=len(timings),
        run_id=run_ids.pop() if len(run_ids) == 1 else None,
    )


def stage_stamps(log: str, run_id: str | None) -> dict[str, float]:
    """The product's stage stamps of a run (monotonic seconds), from its `run_finished` log line."""
    if run_id is None:
        return {}
    for line in reversed(log.splitlines()):
        if run_id not in line or '"stages_ms"' not in line:
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            origin = record["stages_origin_monotonic"]
            return {name: origin + offset / 1000 for name, offset in record["stages_ms"].items()}
    return {}


class Direct:
    """The references: the `openai` client, and a bare `httpx` client, sending the product's own
    request to the same server."""

    def __init__(self, fake: ModelServer) -> None:
        import httpx
        from openai import AsyncOpenAI

        self.fake = fake
        self.client = AsyncOpenAI(api_key="bench", base_url=fake.base_url, max_retries=0, timeout=RUN_TIMEOUT)
        self.http = httpx.AsyncClient(base_url=fake.base_url, timeout=RUN_TIMEOUT)
        self.langchain: dict[str, Any] = {}  # one ChatOpenAI per model name, made once

    async def ask_langchain(self, payload: dict[str, Any]) -> tuple[float, float] | None:
        """A bare `ChatOpenAI(...).bind_tools(tools).astream(messages)` with the product's request's
        model, tools, tool choice and messages (its history): the same figures."""
        from langchain_openai import ChatOpenAI
        from langchain_openai.chat_models.base import _convert_dict_to_message

        model = self.langchain.get(payload["model"])
        if model is None:
            model = self.langchain[payload["model"]] = ChatOpenAI(
                model=payload["model"],
                api_key="bench",
                base_url=self.fake.base_url,
                max_retries=0,
                timeout=RUN_TIMEOUT,
                streaming=True,
                stream_usage=True,
                temperature=0,
            )
        messages = [_convert_dict_to_message(message) for message in payload["messages"]]
        bound = model.bind_tools(payload.get("tools") or [], tool_choice=payload.get("tool_choice"))
        before = len(self.fake.timings)
        started = time.monotonic()
        first = None
        async for _chunk in bound.astream(messages):
            if first is None:
                first = time.monotonic()
        return self._result(before, started, first)

    async def ask(self, payload: dict[str, Any]) -> tuple[float, float] | None:
        """`openai` client: (request → first chunk, request → received by the server) in ms; None if it failed."""
        before = len(self.fake.timings)
        started = time.monotonic()
        stream = await self.client.chat.completions.create(**payload)
        first = None
        async for _chunk in stream:
            if first is None:
                first = time.monotonic()
        return self._result(before, started, first)

    async def ask_http(self, payload: dict[str, Any]) -> tuple[float, float] | None:
        """Bare `httpx`: the same figures, reading up to the first `data:` line."""
        before = len(self.fake.timings)
        started = time.monotonic()
        first = None
        async with self.http.stream("POST", "/chat/completions", json=payload) as response:
            async for line in response.aiter_lines():
                if first is None and line.startswith("data:"):
                    first = time.monotonic()
        return self._result(before, started, first)

    def _result(self, before: int, started: float, first: float | None) -> tuple[float, float] | None:
        timings = self.fake.timings[before:]
        if first is None or len(timings) != 1:
            return None
        return (first - started) * 1000, (timings[0].received - started) * 1000

    async def close(self) -> None:
        """Close the clients' connections."""
        await self.client.close()
        await self.http.aclose()


async def measure_start(product: Product, conversation: int, plan: Plan, direct: Direct, samples: Samples) -> None:
    """One fresh process: the cold send, then the warm sends, each followed by a direct request."""
    server = await asyncio.to_thread(product.start)
    try:
        assert product.session is not None
        headers = ws_headers(product.session, server)
        tabs = [await Tab.open(server.ws_url(conversation), headers) for _ in range(TABS)]
        try:
            cold = await product_send(tabs, product.fake, "A new question: what is 6 times 7?")
            samples.add(cold, cold=True)
            shares = []
            for n in range(plan.warm_per_start):
                await asyncio.sleep(PAUSE)
                send = await product_send(tabs, product.fake, f"Another question, number {n + 1}: what is {n} + 2?")
                await asyncio.sleep(PAUSE)  # the run's log line is written as it ends
                send.stamps = stage_stamps(await asyncio.to_thread(server.log), send.run_id)
                samples.add(send, cold=False)
                if send.share_ms is not None:
                    shares.append(send.share_ms)
                await asyncio.sleep(PAUSE)
                payload = _replayable(product.fake.requests[-1])
                result = await direct.ask(payload)
                if result is not None:
                    samples.direct_first_token.append(result[0])
                    samples.direct_share.append(result[1])
                await asyncio.sleep(PAUSE)
                result = await direct.ask_http(payload)
                if result is not None:
                    samples.http_first_token.append(result[0])
                await asyncio.sleep(PAUSE)
                result = await direct.ask_langchain(payload)
                if result is not None:
                    samples.langchain_first_token.append(result[0])
                    samples.langchain_share.append(result[1])
                    if send.failure is None:
                        samples.over_langchain.extend(ms - result[0] for ms in send.first_frame_ms)
            if shares:
                samples.per_start_share_p50.append(median(shares))
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
    finally:
        await asyncio.to_thread(product.stop, server)


def _replayable(payload: dict[str, Any]) -> dict[str, Any]:
    """The product's request as keyword arguments of `chat.completions.create`."""
    return {**payload, "stream": True}


def summarise(samples: Samples, plan: Plan) -> dict[str, Any]:
    """The figures of one configuration."""
    share_p50 = percentile(samples.share, 0.5)
    frame_p50 = percentile(samples.first_frame, 0.5)
    cold_share = median(samples.cold_share) if samples.cold_share else None
    cold_frame = median(samples.cold_first_frame) if samples.cold_first_frame else None
    return {
        "share_over_langchain_p50_ms": _ms(percentile(samples.over_langchain, 0.5)),
        "share_over_langchain_p90_ms": _ms(percentile(samples.over_langchain, 0.9)),
        "langchain_first_token_p50_ms": _ms(percentile(samples.langchain_first_token, 0.5)),
        "langchain_share_p50_ms": _ms(percentile(samples.langchain_share, 0.5)),
        "stages": {
            name: {
                "p50_ms": _ms(percentile(samples.segments.get(name, []), 0.5)),
                "p95_ms": _ms(percentile(samples.segments.get(name, []), 0.95)),
                "count": len(samples.segments.get(name, [])),
            }
            for name, _start, _end in SEGMENTS
        },
        "product_share_p50_ms": _ms(share_p50),
        "product_share_p90_ms": _ms(percentile(samples.share, 0.9)),
        "send_to_first_frame_p50_ms": _ms(frame_p50),
        "send_to_first_frame_p90_ms": _ms(percentile(samples.first_frame, 0.9)),
        "model_to_first_frame_p50_ms": _ms(percentile(samples.model_to_frame, 0.5)),
        "direct_first_token_p50_ms": _ms(percentile(samples.direct_first_token, 0.5)),
        "direct_share_p50_ms": _ms(percentile(samples.direct_share, 0.5)),
        "direct_httpx_first_token_p50_ms": _ms(percentile(samples.http_first_token, 0.5)),
        "cold_share_ms": _ms(cold_share),
        "cold_first_frame_ms": _ms(cold_frame),
        "cold_extra_ms": _ms(None if cold_frame is None or frame_p50 is None else cold_frame - frame_p50),
        "cold_share_extra_ms": _ms(None if cold_share is None or share_p50 is None else cold_share - share_p50),
        "starts": plan.starts,
        "warm_sends": len(samples.share),
        "failed_sends": samples.failed,
        "failures": dict(samples.failures),
        "tabs": TABS,
        "conversation": f"the same one for a process's sends, seeded with {SEED_TURNS * 2} messages",
        "samples": {
            "product_share_ms": [round(v, 3) for v in samples.share],
            "send_to_first_frame_ms": [round(v, 3) for v in samples.first_frame],
            "model_to_first_frame_ms": [round(v, 3) for v in samples.model_to_frame],
            "cold_share_ms": [round(v, 3) for v in samples.cold_share],
            "cold_first_frame_ms": [round(v, 3) for v in samples.cold_first_frame],
            "direct_first_token_ms": [round(v, 3) for v in samples.direct_first_token],
            "direct_share_ms": [round(v, 3) for v in samples.direct_share],
            "direct_httpx_first_token_ms": [round(v, 3) for v in samples.http_first_token],
            "langchain_first_token_ms": [round(v, 3) for v in samples.langchain_first_token],
            "share_over_langchain_ms": [round(v, 3) for v in samples.over_langchain],
            "per_start_share_p50_ms": [round(v, 3) for v in samples.per_start_share_p50],
        },
    }


def server_name() -> str:
    """The ASGI server `tests.live_server` starts (`TEST_ASGI_SERVER`)."""
    from tests import live_server

    chosen = getattr(live_server, "asgi_server", None)
    return chosen() if chosen is not None else "daphne"


def skip_reason(name: str) -> str | None:
    """Why a configuration cannot be measured here, or None."""
    if name != "postgres_redis":
        return None
    if not _reachable(POSTGRES_URL, 5432):
        return f"PostgreSQL is not reachable at {POSTGRES_URL}"
    if not redis_available():
        return f"Redis is not reachable at {REDIS_URL}"
    return None


async def measure_config(name: str, plan: Plan, fake: ModelServer, log: Callable[[str], None]) -> dict[str, Any]:
    """Every start of one configuration."""
    product = await asyncio.to_thread(Product, name, fake, log)
    direct = Direct(fake)
    samples = Samples()
    try:
        conversations = await product.seed(plan.starts)
        for start, conversation in enumerate(conversations, 1):
            await measure_start(product, conversation, plan, direct, samples)
            cold = samples.cold_first_frame[-1] if samples.cold_first_frame else None
            log(
                f"  {name} start {start}/{plan.starts}: cold share "
                f"{samples.cold_share[-1] if samples.cold_share else float('nan'):.1f} ms, cold first frame "
                f"{cold if cold is not None else float('nan'):.1f} ms, warm share p50 "
                f"{samples.per_start_share_p50[-1] if samples.per_start_share_p50 else float('nan'):.2f} ms"
            )
    finally:
        await direct.close()
        await asyncio.to_thread(product.close)
    figures = summarise(samples, plan)
    figures["load_average"] = round(os.getloadavg()[0], 2)  # the machine may be shared: how busy it was
    figures["server"] = server_name()
    return figures


def targets(configs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The first-token targets, each MET (True), MISSED (False) or not measured (None)."""
    rows = []
    for name in CONFIGS:
        result = configs.get(name, {})
        measured = "skipped" not in result
        share = result.get("share_over_langchain_p50_ms")
        rows.append(
            {
                "name": f"TTFT product share over LangChain p50, {LABELS[name]} (warm)",
                "value": share,
                "target": SHARE_TARGET_MS[name],
                "unit": "ms",
                "met": None if not measured or share is None else share <= SHARE_TARGET_MS[name],
            }
        )
    for name in CONFIGS:
        result = configs.get(name, {})
        extra = result.get("cold_extra_ms")
        rows.append(
            {
                "name": f"TTFT first send after start minus warm p50, {LABELS[name]}",
                "value": extra,
                "target": COLD_EXTRA_TARGET_MS,
                "unit": "ms",
                "met": None if "skipped" in result or extra is None else extra <= COLD_EXTRA_TARGET_MS,
            }
        )
    return rows


async def ttft_scenario(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Measure time to first token on every configuration this machine can run; JSON-able results:
    `{"configs": {name: figures | {"skipped": reason}}, "targets": [...]}` (see the module's doc)."""
    plan = QUICK if quick else FULL
    configs: dict[str, dict[str, Any]] = {}
    with ModelServer() as fake:
        for name in CONFIGS:
            reason = skip_reason(name)
            if reason is not None:
                log(f"time to first token, {LABELS[name]}: skipped ({reason})")
                configs[name] = {"skipped": reason}
                continue
            log(f"time to first token, {LABELS[name]}: {plan.starts} starts x (1 cold + {plan.warm_per_start} warm)")
            configs[name] = await measure_config(name, plan, fake, log)
    return {"configs": configs, "targets": targets(configs)}


def table(results: dict[str, Any]) -> str:
    """The figures as a Markdown table, then one MET / MISSED line per target."""
    columns = [
        ("over LangChain p50", "share_over_langchain_p50_ms"),
        ("over LangChain p90", "share_over_langchain_p90_ms"),
        ("LangChain p50", "langchain_first_token_p50_ms"),
        ("share p50", "product_share_p50_ms"),
        ("share p90", "product_share_p90_ms"),
        ("send→frame p50", "send_to_first_frame_p50_ms"),
        ("model→frame p50", "model_to_first_frame_p50_ms"),
        ("direct p50", "direct_first_token_p50_ms"),
        ("direct share p50", "direct_share_p50_ms"),
        ("httpx p50", "direct_httpx_first_token_p50_ms"),
        ("cold share", "cold_share_ms"),
        ("cold send→frame", "cold_first_frame_ms"),
        ("cold extra", "cold_extra_ms"),
        ("load avg", "load_average"),
    ]
    lines = [
        "| config (ms) | " + " | ".join(title for title, _key in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, result in results["configs"].items():
        if "skipped" in result:
            lines.append(f"| {LABELS[name]} | skipped: {result['skipped']} |")
            continue
        cells = ["-" if result.get(key) is None else f"{result[key]:.2f}" for _title, key in columns]
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(stage_table(results))
    lines.append("")
    for target in results["targets"]:
        verdict = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[target["met"]]
        value = "-" if target["value"] is None else f"{target['value']:.2f}"
        lines.append(f"{verdict}: {target['name']}: {value} {target['unit']} (target <= {target['target']:g})")
    return "\n".join(lines)


def stage_table(results: dict[str, Any]) -> str:
    """Each stage of a warm send, p50 / p95 per configuration (ms)."""
    names = [name for name, result in results["configs"].items() if "stages" in result]
    lines = [
        "| stage (ms) | " + " | ".join(f"{LABELS[name]} p50 | p95" for name in names) + " |",
        "|---" * (2 * len(names) + 1) + "|",
    ]
    for stage, start, end in SEGMENTS:
        cells = []
        for name in names:
            figures = results["configs"][name]["stages"].get(stage, {})
            cells += ["-" if figures.get(key) is None else f"{figures[key]:.2f}" for key in ("p50_ms", "p95_ms")]
        lines.append(f"| {stage} ({start} → {end}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.ttft [--quick] [--output PATH]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts and sends")
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = asyncio.run(ttft_scenario(args.quick, _log))
    results["duration_s"] = round(time.monotonic() - started, 1)
    print(table(results))
    print(f"total {results['duration_s']} s")
    if args.output:
        with open(args.output, "w") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
