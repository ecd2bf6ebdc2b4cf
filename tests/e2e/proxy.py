"""A TCP proxy on 127.0.0.1 that a test can cut, to drop a browser's connections to the server.

``TcpProxy(target_port).start()`` listens on a free loopback port and forwards every connection
(HTTP and WebSocket alike) to ``127.0.0.1:target_port``. ``cut(refuse_seconds)`` aborts every
proxied connection at once and stops listening for ``refuse_seconds`` (new connections are
refused, as when a server is unreachable), then listens again on the same port. The proxy runs
on its own thread and event loop and stops itself after ``lifetime`` seconds at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Self

HOST = "127.0.0.1"
CHUNK = 64 * 1024


class TcpProxy:
    """Threaded loopback TCP forwarder with a switch to cut every connection."""

    def __init__(self, target_port: int, *, lifetime: float = 120.0) -> None:
        self.target_port = target_port
        self.lifetime = lifetime
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Self:
        """Start the proxy thread and wait until it listens."""
        self._thread = threading.Thread(target=self._run, name="e2e-tcp-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(5) or not self.port:
            raise RuntimeError("the TCP proxy failed to start")
        return self

    def cut(self, refuse_seconds: float = 2.0) -> None:
        """Abort every proxied connection now and refuse new ones for `refuse_seconds`."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._cut(refuse_seconds), self._loop).result(5)

    def stop(self) -> None:
        """Close the listener and every connection, and join the thread."""
        if self._loop and self._stopping:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._ready.set()
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        await self._listen()
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.lifetime)
        await self._close_listener()
        self._abort_all()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _cut(self, refuse_seconds: float) -> None:
        self.cuts += 1
        await self._close_listener()
        self._abort_all()
        asyncio.get_running_loop().call_later(refuse_seconds, lambda: asyncio.ensure_future(self._reopen()))

    async def _reopen(self) -> None:
        if self._stopping is not None and not self._stopping.is_set() and self._server is None:
            await self._listen()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            server_reader, server_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        try:
            await asyncio.gather(
                _pipe(client_reader, server_writer),
                _pipe(server_reader, client_writer),
                return_exceptions=True,
            )
        finally:
            for writer in (client_writer, server_writer):
                self._writers.discard(writer)
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until either side closes; then close the other side's write half."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()
