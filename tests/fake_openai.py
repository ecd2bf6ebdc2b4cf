"""Local OpenAI-compatible ``POST /v1/chat/completions`` server for tests.

``FakeOpenAI`` runs on its own thread and event loop, bound to 127.0.0.1 on a free port, so any
test event loop, or another process such as daphne, can reach ``base_url``. Answers are scripted
first in, first out with ``enqueue``; an empty queue answers HTTP 500 ``NO_SCRIPTED_RESPONSE``.

Response kinds:

- ``StreamResponse(chunks, delay=0, cut_after=None, stall_after=None, stall_seconds=60,
  write_size=None, delay_before=0)``: a chunked ``text/event-stream`` of ``data: <json>`` events
  ending with ``data: [DONE]``, which counts as the last event. ``delay`` waits between events;
  ``cut_after=N`` drops the TCP connection after N events, without the terminating chunk;
  ``stall_after=N`` then sends nothing for ``stall_seconds`` or until the client disconnects;
  ``write_size=K`` writes each event as K-byte HTTP chunks, flushed one by one, so UTF-8
  characters are split across writes. As at OpenAI, the usage chunk and ``usage`` keys are only
  sent when the request has ``stream_options: {"include_usage": true}``.
- ``ErrorResponse(status=500, message=..., type="server_error", code=None, headers={},
  delay_before=0)``: an ``{"error": {...}}`` JSON body; ``headers`` e.g. ``{"Retry-After": "7"}``.

``delay_before`` waits before the status line. Builders: ``content_chunks``, ``tool_calls_chunks``,
``split_text``. Pytest fixture: ``fake_openai``.

Timing (for the benchmark): each request to the completions route appends a ``RequestTiming`` to
``timings``, with the ``time.monotonic()`` at which its request line arrived and at which the first
event of its stream was written to the socket. ``FakeOpenAI(default=...)`` answers with that response
(or ``default(payload)``) whenever nothing is scripted, instead of the 500 ``NO_SCRIPTED_RESPONSE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self

import pytest

logger = logging.getLogger(__name__)

Chunk = dict[str, Any]
ToolCall = tuple[str, str, list[str]]
Usage = tuple[int, int]

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_USAGE: Usage = (11, 7)
NO_SCRIPTED_RESPONSE = "fake OpenAI: no response was scripted for this request"
STREAM_REQUIRED = "fake OpenAI only streams; send stream=true"
_CREATED = 1_700_000_000
_WRITE_PAUSE = 0.001


@dataclass
class StreamResponse:
    """A scripted streaming answer built from chat.completion.chunk dicts."""

    chunks: list[Chunk]
    delay: float = 0.0
    cut_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 60.0
    write_size: int | None = None
    delay_before: float = 0.0


@dataclass
class ErrorResponse:
    """A scripted HTTP error with an OpenAI-style JSON error body."""

    status: int = 500
    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_before: float = 0.0


Response = StreamResponse | ErrorResponse


@dataclass
class RequestTiming:
    """When one completions request arrived and when its stream's first event was written (monotonic)."""

    received: float
    first_event: float | None = None


def split_text(text: str, size: int) -> list[str]:
    """Cut ``text`` into fragments of ``size`` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> Chunk:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _envelope([choice])


def _envelope(choices: list[dict[str, Any]]) -> Chunk:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": DEFAULT_MODEL,
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }


def _finish(chunks: list[Chunk], reason: str, usage: Usage | None) -> list[Chunk]:
    chunks.append(_chunk({}, reason))
    if usage is None:
        return chunks
    for chunk in chunks:
        chunk["usage"] = None
    prompt, completion = usage
    tokens = {"prompt_tokens": prompt, "completion_tokens": completion}
    last = _envelope([])
    last["usage"] = {**tokens, "total_tokens": prompt + completion}
    return [*chunks, last]


def content_chunks(fragments: list[str], *, usage: Usage | None = DEFAULT_USAGE) -> list[Chunk]:
    """Chunks for a text answer: role, one content delta per fragment, stop, usage."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": fragment}) for fragment in fragments]
    return _finish(chunks, "stop", usage)


def tool_calls_chunks(calls: list[ToolCall], *, usage: Usage | None = DEFAULT_USAGE) -> list[Chunk]:
    """Chunks for tool calls ``(call_id, name, argument_fragments)``, streamed in turn."""
    chunks = [_chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, fragments) in enumerate(calls):
        function = {"name": name, "arguments": ""}
        first = {"index": index, "id": call_id, "type": "function", "function": function}
        chunks.append(_chunk({"tool_calls": [first]}))
        for fragment in fragments:
            delta = {"index": index, "function": {"arguments": fragment}}
            chunks.append(_chunk({"tool_calls": [delta]}))
    return _finish(chunks, "tool_calls", usage)


def _sse_events(chunks: list[Chunk], include_usage: bool) -> list[bytes]:
    if not include_usage:
        chunks = [{k: v for k, v in c.items() if k != "usage"} for c in chunks if c["choices"]]
    # backslashreplace: a lone surrogate (which UTF-8 cannot carry) goes out as its JSON escape, as a real
    # server's ASCII-escaped JSON would send it.
    events = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode("utf-8", "backslashreplace") for c in chunks]
    return [*events, b"data: [DONE]\n\n"]


def _invalid(status: int, message: str) -> ErrorResponse:
    return ErrorResponse(status, message, "invalid_request_error")


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error_bytes(error: ErrorResponse, keep_alive: bool) -> bytes:
    fields = {"message": error.message, "type": error.type, "code": error.code}
    body = json.dumps({"error": {**fields, "param": None}}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    connection = "keep-alive" if keep_alive else "close"
    return _head(error.status, {**headers, "Connection": connection, **error.headers}) + body


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
)


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes, float] | None:
    line = await reader.readline()
    received = time.monotonic()
    if not line.strip():
        return None
    method, target, _version = line.decode("latin-1").split()
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, target.split("?")[0], headers, body, received


async def _sleep_or_eof(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait up to ``seconds``; return True as soon as the client closes the connection."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            if not await asyncio.wait_for(reader.read(1024), left):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False


async def _write_event(writer: asyncio.StreamWriter, data: bytes, size: int | None) -> None:
    step = size or len(data)
    for start in range(0, len(data), step):
        piece = data[start : start + step]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        if size:
            await asyncio.sleep(_WRITE_PAUSE)


def _no_buffering(writer: asyncio.StreamWriter) -> None:
    """Make ``drain()`` wait until every byte reached the socket and send segments at once."""
    writer.transport.set_write_buffer_limits(high=0)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class FakeOpenAI:
    """Threaded fake of the OpenAI chat.completions streaming endpoint."""

    def __init__(
        self, host: str = "127.0.0.1", *, default: Response | Callable[[dict[str, Any]], Response] | None = None
    ) -> None:
        self.host = host
        self.port = 0
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self.timings: list[RequestTiming] = []
        self.disconnects = 0
        self.completed_streams = 0
        self._queue: deque[Response] = deque()
        self._lock = threading.Lock()
        self._disconnected = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def base_url(self) -> str:
        """Base URL for OpenAI clients, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def enqueue(self, *responses: Response) -> None:
        """Script the next responses, served first in, first out."""
        with self._lock:
            self._queue.extend(responses)

    def reset(self) -> None:
        """Forget the script and what was recorded (for a server shared by several tests)."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.timings.clear()
            self.disconnects = 0
            self.completed_streams = 0
        self._disconnected.clear()

    def wait_for_disconnect(self, timeout: float) -> bool:
        """Block until a client has left before its response was complete; False on timeout."""
        return self._disconnected.wait(timeout)

    def start(self) -> Self:
        """Start the server thread and wait until it listens."""
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(5) or not self.port:
            raise RuntimeError("fake OpenAI server failed to start")
        return self

    def stop(self) -> None:
        """Close every connection and join the server thread."""
        if self._loop and self._stopping:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except Exception:
            logger.exception("fake OpenAI server crashed")
        finally:
            self._ready.set()
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._serve_connection, self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        _no_buffering(writer)
        try:
            while await self._serve_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("fake OpenAI server: request failed")
        finally:
            self._connections.pop(task, None)
            writer.close()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; return whether the connection stays open."""
        request = await _read_request(reader)
        if request is None:
            return False
        method, path, headers, body, received = request
        keep_alive = headers.get("connection", "").lower() != "close"
        if (method, path) != ("POST", "/v1/chat/completions"):
            error = _invalid(404, f"fake OpenAI: no route {method} {path}")
            return await self._send_error(writer, error, keep_alive)
        payload = json.loads(body or b"{}")
        timing = RequestTiming(received=received)
        with self._lock:
            self.timings.append(timing)
        response = self._next_response(payload)
        if response.delay_before and await _sleep_or_eof(reader, response.delay_before):
            self._note_disconnect()
            return False
        if isinstance(response, ErrorResponse):
            return await self._send_error(writer, response, keep_alive)
        if payload.get("stream") is not True:
            error = _invalid(400, STREAM_REQUIRED)
            return await self._send_error(writer, error, keep_alive)
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        return await self._stream(reader, writer, response, include_usage, timing) and keep_alive

    def _next_response(self, payload: dict[str, Any]) -> Response:
        with self._lock:
            self.requests.append(payload)
            if self._queue:
                return self._queue.popleft()
        if self.default is not None:
            return self.default(payload) if callable(self.default) else self.default
        return ErrorResponse(500, NO_SCRIPTED_RESPONSE, code="no_scripted_response")

    async def _send_error(self, writer: asyncio.StreamWriter, error: ErrorResponse, keep_alive: bool) -> bool:
        writer.write(_error_bytes(error, keep_alive))
        await writer.drain()
        return keep_alive

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        resp: StreamResponse,
        include_usage: bool,
        timing: RequestTiming | None = None,
    ) -> bool:
        events = _sse_events(resp.chunks, include_usage)
        limits = [n for n in (resp.cut_after, resp.stall_after) if n is not None]
        stop_at = min([len(events), *limits])
        try:
            writer.write(_STREAM_HEAD)
            for n, event in enumerate(events[:stop_at]):
                if n and resp.delay and await _sleep_or_eof(reader, resp.delay):
                    return self._note_disconnect()
                await _write_event(writer, event, resp.write_size)
                if timing is not None and timing.first_event is None:
                    timing.first_event = time.monotonic()
            if stop_at == resp.cut_after:
                writer.transport.abort()
                return False
            if stop_at == resp.stall_after:
                if await _sleep_or_eof(reader, resp.stall_seconds):
                    self._note_disconnect()
                return False
            writer.write(b"0\r\n\r\n")
            # Counted before the drain: a client can read the end (and a test check the count) before it returns.
            with self._lock:
                self.completed_streams += 1
            await writer.drain()
        except ConnectionError:
            return self._note_disconnect()
        return True

    def _note_disconnect(self) -> bool:
        """Count a client that left before the response was complete; the connection is done."""
        with self._lock:
            self.disconnects += 1
        self._disconnected.set()
        return False


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started ``FakeOpenAI`` server, stopped after the test."""
    with FakeOpenAI() as server:
        yield server
