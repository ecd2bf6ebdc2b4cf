"""Where the server's CPU goes per relayed token: py-spy on the saturation scenario.

`python -m bench.profile [--server uvicorn] [--layer memory] [--total 1000] [--seconds 15]` starts
one server process (`bench.servers.SERVERS`), keeps `total / 100` conversations of 3 tabs each
streaming at 100 tok/s per run (the saturation scenario), samples the process with
`py-spy record --nonblocking` meanwhile (py-spy is a dev requirement; it needs ptrace, root
here), and sorts the samples two ways:

- *by stage*: walking each sample's stack from the innermost frame outwards, the first frame
  that belongs to a stage of a token's path (server framing, consumer, channel layer, relay,
  model and LangChain, database, event loop) owns the sample;
- *by library*: the innermost frame's package (self time: where the instructions ran).

It prints both as shares of the samples and as CPU milliseconds per 1,000 relayed tokens (the
process's measured CPU over the window, split by share), and writes the collapsed stacks and a
JSON summary next to `--output`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.scenarios import Bench, Stream, open_streams, run_streams
from bench.servers import BIN, PRODUCTION_SERVER, BenchDeployment, ProcessMeter, flush_redis

PER_RUN = 100.0
TOKENS = 300
# (stage, path fragments): the first stage whose fragment is in a frame's file, innermost frame first.
STAGES = (
    (
        "server: WebSocket framing and socket I/O",
        (
            "/uvicorn/",
            "/websockets/",
            "/wsproto/",
            "/h11/",
            "/httptools/",
            "/daphne/",
            "/autobahn/",
            "/twisted/",
            "/txaio/",
            "/hypercorn/",
            "/granian/",
        ),
    ),
    (
        "consumer: dispatch and send (channels, consumers.py)",
        (
            "/channels/consumer",
            "/channels/generic/",
            "/conversations/consumers.py",
            "/channels/routing",
            "/channels/middleware",
            "/channels/sessions",
            "/channels/auth",
            "/channels/security",
            "/channels/utils",
        ),
    ),
    ("channel layer: group_send and receive", ("/channels/layers.py", "/channels_redis/", "/msgpack/")),
    ("Redis client (event log, layer)", ("/redis/",)),
    ("relay: publish_event, event log (runs.py)", ("/conversations/runs.py", "/conversations/event_log.py")),
    (
        "agent runtime: executor, handler, event stream",
        (
            "/agent_runtime/executor.py",
            "/agent_runtime/callbacks.py",
            "/agent_runtime/stream.py",
            "/agent_runtime/answer_stream.py",
            "/agent_runtime/events.py",
            "/agent_runtime/transcript.py",
        ),
    ),
    ("model: offline model's stream", ("/agent_runtime/offline_model.py", "/agent_runtime/arithmetic.py")),
    ("LangChain per chunk (astream, callbacks, messages, pydantic)", ("/langchain", "/pydantic", "/openai/")),
    (
        "database and worker threads (Django, asgiref)",
        ("/django/", "/asgiref/", "sqlite3", "/psycopg", "/concurrent/futures", "threading.py"),
    ),
    ("event loop (asyncio, uvloop)", ("/asyncio/", "uvloop", "selectors.py")),
)
LIBRARIES = (
    ("json", ("/json/", "orjson")),
    ("uvicorn", ("/uvicorn/",)),
    ("websockets", ("/websockets/",)),
    ("daphne", ("/daphne/",)),
    ("autobahn", ("/autobahn/", "/txaio/")),
    ("twisted", ("/twisted/",)),
    ("channels", ("/channels/",)),
    ("channels_redis / redis", ("/channels_redis/", "/redis/", "/msgpack/")),
    ("conversations (the product)", ("/conversations/",)),
    ("agent_runtime (the product)", ("/agent_runtime/",)),
    ("langchain", ("/langchain",)),
    ("pydantic", ("/pydantic",)),
    ("django", ("/django/",)),
    ("asgiref", ("/asgiref/",)),
    ("asyncio", ("/asyncio/",)),
    ("uvloop", ("uvloop",)),
    ("threading, queues", ("threading.py", "/concurrent/", "queue.py")),
)


def _frames(stack: str) -> list[str]:
    """py-spy raw stack (outermost first): the frames' `function (file)` texts."""
    return [frame for frame in stack.split(";") if "(" in frame]


def _match(frame: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> str | None:
    source = frame[frame.rfind("(") :]
    return next((name for name, parts in table if any(part in source for part in parts)), None)


def classify(collapsed: str) -> tuple[Counter[str], Counter[str], int]:
    """Samples by stage and by library from py-spy's raw output; and the number of samples."""
    stages: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        inner_first = list(reversed(frames))
        stage = next((s for s in (_match(f, STAGES) for f in inner_first) if s), "other")
        stages[stage] += count
        library = _match(inner_first[0], LIBRARIES) if inner_first else None
        libraries[library or "other (stdlib, C)"] += count
    return stages, libraries, total


async def _load(bench: Bench, conversations: int, seconds: float) -> dict[str, Any]:
    streams: list[Stream] = await open_streams(bench, "product", conversations, 3)
    tokens = 0
    runs = 0
    p99s = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rep = await run_streams(bench, streams, TOKENS)
            tokens += rep.runs * TOKENS
            runs += rep.runs
            p99s.append(rep.p99_ms)
    finally:
        for stream in streams:
            await stream.close()
    return {"runs": runs, "tokens": tokens, "p99_ms": p99s}


async def profile(server_name: str, layer: str, total: float, seconds: float, output: Path) -> dict[str, Any]:
    """Load one server with the saturation scenario at `total` tok/s while py-spy samples it."""
    deployment = BenchDeployment.prepare()
    try:
        server = await asyncio.to_thread(
            deployment.start_app, layer=layer, tokens_per_second=PER_RUN, server=server_name
        )
        session = await asyncio.to_thread(deployment.sign_up, server)
        meter = ProcessMeter(server.process.pid)
        bench = Bench(server, session, meter, layer, PER_RUN, server_name=server_name)
        warm = await Stream.open(bench, "product", 1)
        await run_streams(bench, [warm], 30)
        await warm.close()
        raw = output.with_suffix(".collapsed.txt")
        spy = await asyncio.create_subprocess_exec(
            *[
                str(BIN / "py-spy"),
                "record",
                "--nonblocking",
                "-r",
                "200",
                "-f",
                "raw",
                "--full-filenames",
                "--nolineno",
                "-d",
                str(int(seconds) + 2),
                "-o",
                str(raw),
                "-p",
                str(server.process.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)
        cpu_before = meter.cpu_seconds()
        load = await _load(bench, round(total / PER_RUN), seconds)
        cpu = meter.cpu_seconds() - cpu_before
        await asyncio.wait_for(spy.wait(), 60)
        deployment.stop(server)
    finally:
        deployment.close()
        if layer != "memory":
            flush_redis()
    stages, libraries, samples = classify(raw.read_text())
    ms_per_1k = cpu / max(load["tokens"], 1) * 1e6

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"what": name, "share": round(n / samples, 4), "cpu_ms_per_1k_tokens": round(ms_per_1k * n / samples, 1)}
            for name, n in counter.most_common()
        ]

    result = {
        "server": server_name,
        "layer": layer,
        "offered_tokens_per_s": total,
        "seconds": seconds,
        "samples": samples,
        "relayed_tokens": load["tokens"],
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_1k_tokens": round(ms_per_1k, 1),
        "p99_ms": [round(p, 1) for p in load["p99_ms"]],
        "by_stage": shares(stages),
        "by_library": shares(libraries),
        "collapsed": str(raw),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    """Profile one server and print where its CPU went."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--server", default=PRODUCTION_SERVER)
    parser.add_argument("--layer", default="memory")
    parser.add_argument("--total", type=float, default=1000, help="offered tok/s (100 per run, 3 tabs each)")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--output", type=Path, default=Path("/tmp/bench-profile.json"))
    args = parser.parse_args(argv)
    result = asyncio.run(profile(args.server, args.layer, args.total, args.seconds, args.output))
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{result['server']} {result['layer']} at {result['offered_tokens_per_s']:g} tok/s: "
        f"{result['samples']} samples, {result['cpu_ms_per_1k_tokens']} CPU ms per 1,000 relayed tokens"
    )
    for title, rows in (("by stage", result["by_stage"]), ("by library (self)", result["by_library"])):
        print(f"\n{title}:")
        for row in rows:
            print(f"  {row['share'] * 100:5.1f} %  {row['cpu_ms_per_1k_tokens']:7.1f} ms/1k  {row['what']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
