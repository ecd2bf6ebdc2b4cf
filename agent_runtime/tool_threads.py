"""The threads sync tools run in: a bounded pool of their own, never a thread anything else waits on.

A sync tool blocks the thread it runs in for as long as it takes, and Python cannot stop a
thread. So sync tools get threads no one else needs: a slow tool then delays only the runs
whose tools wait for a free thread, never a socket's snapshot or the storing of an answer
(which run on the database's own thread). The caller bounds each wait (the executor's tool
timeout): a call past it ends as a tool error while its thread finishes in the background.

The threads are daemons: a tool that never returns does not keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

_Job = tuple[concurrent.futures.Future[Any], Callable[[], Any]]


class ToolThreads:
    """At most `size` daemon threads, started as calls need them, running sync calls in turn."""

    def __init__(self, *, size: int, around: Callable[[Callable[[], Any]], Any] | None = None) -> None:
        if size < 1:
            raise ValueError("a tool thread pool needs at least one thread")
        self.size = size
        self._around = around
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        """Threads waiting for a call."""
        self._waiting = 0
        """Calls queued that no thread has taken yet."""
        self._busy = 0
        self._closed = False
        self._numbers = itertools.count(1)

    @property
    def busy(self) -> int:
        """Threads running a call now (a call that outlived its timeout still counts)."""
        return self._busy

    def runner(self, function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """`function` as an awaitable that runs it in one of these threads, in the caller's context."""

        async def run(**kwargs: Any) -> Any:
            context = contextvars.copy_context()
            future = self._submit(functools.partial(context.run, function, **kwargs))
            return await asyncio.wrap_future(future)

        return run

    def shutdown(self) -> None:
        """Start no more calls; calls not yet started are cancelled, running ones finish on their own."""
        with self._lock:
            self._closed = True
            threads = len(self._threads)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        for _ in range(threads):
            self._jobs.put(None)

    def _submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the tool threads are shut down")
            self._jobs.put((future, call))
            self._waiting += 1
            if self._waiting > self._idle and len(self._threads) < self.size:
                thread = threading.Thread(target=self._work, name=f"tool-{next(self._numbers)}", daemon=True)
                self._threads.append(thread)
                self._idle += 1
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, call = job
            with self._lock:
                self._waiting -= 1
            # A call whose awaiting run gave up (timeout, stop) before it started is never run.
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._idle -= 1
                self._busy += 1
            try:
                result = self._around(call) if self._around is not None else call()
            except BaseException as error:  # the awaiting run reports it as the tool's error
                future.set_exception(error)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._idle += 1
