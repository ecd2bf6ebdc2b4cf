"""Server processes for the benchmark: `Deployment` for the database and env, our own starter.

One SQLite database (migrated once) serves every server process of a bench run; each
process gets its channel layer and model pace from its environment, and is served by one
of `SERVERS` (daphne, uvicorn with the production options, and the variants compared with
them). `ProcessMeter` reads a process's CPU time and peak resident memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

from tests.live_server import BIN, UVICORN_OPTIONS, Deployment, Server, server_command

BENCH_APP = "bench.asgi:application"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
LAYERS = ("memory", "core", "pubsub")
# The product's defaults (Deployment.create speeds these up for the tests), and no rate limit nor
# socket cap: the benchmark's one user opens hundreds of tabs.
PRODUCT_ENV = {
    "RUN_HEARTBEAT_SECONDS": "5",
    "RUN_STALE_SECONDS": "20",
    "RUN_SWEEP_SECONDS": "10",
    "RATE_LIMIT_MESSAGES_PER_MINUTE": "1000000",
    "RATE_LIMIT_CONCURRENT_RUNS": "100000",
    "SOCKETS_PER_USER": "1000000",
}


def _uvicorn(app: str, port: int, **options: str) -> list[str]:
    """uvicorn with the production options, some of them replaced."""
    argv = [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS]
    for name, value in options.items():
        argv[argv.index(f"--{name}") + 1] = value
    return argv


# Each server the bench can serve the product with: a function of (app, port) giving its command line.
SERVERS = {
    "daphne": lambda app, port: server_command("daphne", app, port),
    "uvicorn": lambda app, port: server_command("uvicorn", app, port),
    "uvicorn-legacy-ws": lambda app, port: _uvicorn(app, port, ws="websockets"),
    "uvicorn-wsproto": lambda app, port: _uvicorn(app, port, ws="wsproto"),
    "uvicorn-asyncio": lambda app, port: _uvicorn(app, port, loop="asyncio"),
    "hypercorn": lambda app, port: [
        str(BIN / "hypercorn"),
        "-b",
        f"127.0.0.1:{port}",
        "-k",
        "uvloop",
        app,
    ],
    "granian": lambda app, port: [
        str(BIN / "granian"),
        "--interface",
        "asginl",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--no-access-log",
        app,
    ],
}
PRODUCTION_SERVER = "uvicorn"


def layer_env(layer: str) -> dict[str, str]:
    """The environment selecting a channel layer: in-memory, Redis `core` or Redis `pubsub`."""
    if layer == "memory":
        return {"REDIS_URL": ""}
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}")
    return {"REDIS_URL": REDIS_URL, "REDIS_CHANNEL_LAYER": layer}


def flush_redis() -> None:
    """Empty the bench's Redis database (stale groups of a previous run would get our sends)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_available() -> bool:
    """Whether the bench's Redis answers."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


SET_UP = (
    "from django.core.management import call_command; "
    "call_command('migrate', interactive=False, verbosity=0); "
    "call_command('collectstatic', interactive=False, verbosity=0)"
)


class BenchDeployment(Deployment):
    """A `Deployment` whose servers run `bench.asgi:application` and can be stopped one by one."""

    static_collected = False

    def manage(self, *args: str) -> str:
        """A manage.py command; `migrate` collects the static files too, in the same process (one start-up less)."""
        if args[:1] == ("collectstatic",) and self.static_collected:
            return ""
        if args[:1] == ("migrate",):
            output = super().manage("shell", "--no-imports", "-c", SET_UP)
            self.static_collected = True
            return output
        return super().manage(*args)

    @classmethod
    def prepare(cls, database_url: str | None = None) -> BenchDeployment:
        """A fresh database (SQLite, or PostgreSQL next to `database_url`), migrated, with the product's
        default timings."""
        deployment = cls.create(database_url=database_url, extra_env=dict(PRODUCT_ENV))
        assert isinstance(deployment, BenchDeployment)
        return deployment

    def start_app(
        self,
        *,
        layer: str,
        tokens_per_second: float,
        app: str = BENCH_APP,
        server: str = PRODUCTION_SERVER,
        flush: bool = True,
        **extra_env: str,
    ) -> Server:
        """Start a process of `server` serving `app` with this layer and model pace; wait until it answers."""
        if layer != "memory" and flush:
            flush_redis()
        env = {**layer_env(layer), "OFFLINE_MODEL_TOKENS_PER_SECOND": str(tokens_per_second), **extra_env}
        command = SERVERS[server]
        return self.start_server(app=app, server=server, command=lambda port: command(app, port), **env)

    def stop(self, server: Server) -> None:
        """SIGTERM one server (SIGKILL after 10 s) and forget it."""
        self.stop_server(server)
        if server in self.servers:
            self.servers.remove(server)

    def close(self) -> None:
        """Stop every server, drop the database files."""
        super().close()
        shutil.rmtree(self._workdir, ignore_errors=True)


@dataclass
class ProcessMeter:
    """CPU seconds and peak RSS of one server: its process and its children (granian serves from a worker)."""

    pid: int

    def processes(self) -> list[psutil.Process]:
        """The server's process and its children, those still alive."""
        try:
            main = psutil.Process(self.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (all threads, all processes of the server)."""
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        """Resident memory now, bytes (all processes of the server)."""
        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def reset_peak(self) -> None:
        """Start a new peak-RSS window (Linux: `clear_refs` 5 resets VmHWM to the current RSS)."""
        for process in self.processes():
            with contextlib.suppress(OSError):
                Path(f"/proc/{process.pid}/clear_refs").write_text("5")

    def peak_rss(self) -> int:
        """Peak resident memory since the last `reset_peak`, bytes (VmHWM summed; RSS now if unreadable)."""
        total = 0
        for process in self.processes():
            try:
                status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
            except (OSError, StopIteration):
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
        return total


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy so far (every core, not idle, not waiting for I/O)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@dataclass
class CpuWindow:
    """CPU used during a repetition: by the server, and by other processes (noise on a shared machine)."""

    meter: ProcessMeter
    started: float
    server_before: float
    own_before: float
    busy_before: float
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    others_cores: float = 0.0

    @classmethod
    def open(cls, meter: ProcessMeter) -> CpuWindow:
        """Start counting."""
        own = psutil.Process().cpu_times()
        return cls(meter, time.monotonic(), meter.cpu_seconds(), own.user + own.system, busy_cpu_seconds())

    def close(self) -> None:
        """Stop counting: server CPU seconds, and cores busy with anything but the server and the clients."""
        own = psutil.Process().cpu_times()
        self.wall = time.monotonic() - self.started
        self.server_cpu = self.meter.cpu_seconds() - self.server_before
        self.client_cpu = own.user + own.system - self.own_before
        busy = busy_cpu_seconds() - self.busy_before
        self.others_cores = max(0.0, busy - self.server_cpu - self.client_cpu) / max(self.wall, 1e-9)
