"""What this server process holds while it serves, in one place, and what it does with it when it stops.

The runs executing here, the approval waits of those runs, the background tasks (titles, the
watchdog's sweeps, the warm-up's first connections), the threads of sync tools, the run event
logs and the count of each user's open sockets: `ProcessState` owns them all, so that a process
that stops (`shutdown`) lets go of each in order, and a test starts from nothing (`reset`). This
module imports none of the modules whose state it holds: they import it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from agent_runtime.tool_threads import ToolThreads
from conversations.telemetry import WEBSOCKETS_OPEN

logger = logging.getLogger(__name__)


class HeldRun(Protocol):
    """What the owner needs of a run executing here (`runs.ActiveRun` is one)."""

    run_id: str
    conversation_id: int
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[None] | None

    def interrupt(self) -> None:
        """End the run `interrupted`: its answer so far stored, its one `done` sent."""


class HeldLog(Protocol):
    """What the owner needs of a run event log (`event_log.RunEventLog` is one)."""

    async def close(self) -> None:
        """Let go of its connections."""


class ProcessState:
    """The process's runs, approval waits, background tasks and event logs; `shutdown` ends them."""

    def __init__(self) -> None:
        self.runs: dict[int, HeldRun] = {}
        """The runs executing in this process, by conversation id."""
        self.approval_waiters: dict[str, asyncio.Event] = {}
        """The approval waits of those runs, by approval id: set when a decision may have been made."""
        self.title_tasks: set[asyncio.Task[None]] = set()
        """Titles being asked of the model, after their run's `done`."""
        self.sweepers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        """The watchdog's periodic sweep, one per event loop."""
        self.warm_up_tasks: set[asyncio.Task[None]] = set()
        """The warm-up's first connections, opened on the serving loop."""
        self.event_logs: dict[str, HeldLog] = {}
        """The run event logs, by where Redis is (`redis_clients.RedisTarget.name`; empty for the in-memory one)."""
        self.open_sockets: dict[int, int] = {}
        """How many conversation sockets each user holds open here, by user id (`SOCKETS_PER_USER`)."""
        self.tool_threads: ToolThreads | None = None
        """The threads sync tools run in (made at the first sync tool call, `runs.sync_tool_runner`)."""
        self.publish_retries_paused_until = 0.0
        """Loop time until which a failing event append or send is not retried: set when retries gave up,
        so that a Redis that stays down slows each event by one failed attempt, not by every retry."""
        self.draining = False
        """No new work: set by `begin_drain` (the send path refuses new runs while it is set)."""
        self.drain_started = asyncio.Event()
        """Set with `draining`: event streams end so that their clients reconnect to another process."""
        self.stopped = False
        """Set by `shutdown` once its runs are ended: an approval still waiting stops waiting (expired)."""

    @property
    def accepting_runs(self) -> bool:
        """Whether this process starts new runs (it does until it drains)."""
        return not self.draining

    def socket_open(self, user_id: int, *, limit: int) -> bool:
        """Count one more open socket of the user, unless they hold `limit` here already: whether it counted."""
        held = self.open_sockets.get(user_id, 0)
        if held >= limit:
            return False
        self.open_sockets[user_id] = held + 1
        WEBSOCKETS_OPEN.inc()
        return True

    def socket_closed(self, user_id: int) -> None:
        """A socket that `socket_open` counted closed."""
        held = self.open_sockets.pop(user_id, 0) - 1
        if held >= 0:
            WEBSOCKETS_OPEN.dec()
        if held > 0:
            self.open_sockets[user_id] = held

    def begin_drain(self) -> None:
        """The process is told to stop (SIGTERM, a deploy): from now on it takes no new run, and its event
        streams end. Its runs go on (`shutdown` lets them finish). Called again, it does nothing more."""
        if not self.draining:
            logger.info("draining: no new runs here; %d run(s) streaming", len(self.runs))
        self.draining = True
        self.drain_started.set()

    # A bound on each wait, not on the whole: cancelling `shutdown` midway would leave waits and logs open.
    async def shutdown(self, *, timeout: float, finish_within: float = 0.0) -> list[str]:  # noqa: ASYNC109
        """End what the process holds: its runs may finish within `finish_within` seconds, then the rest are
        stopped, all within `timeout` seconds; the ids of runs still executing after it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # 1. No new work: no new runs, sweeps or titles start from now on.
        self.begin_drain()
        # 2. The runs' own time to finish: the answers streaming are completed, not cut.
        await self._runs_finishing(min(deadline, loop.time() + finish_within))
        # 3. The background tasks: their work is redone elsewhere or was optional.
        background = [*self.sweepers.values(), *self.title_tasks, *self.warm_up_tasks]
        await _cancel(background, deadline)
        # 4. The runs left: each ends `interrupted` (its answer so far stored, its one `done` sent to the tabs).
        unfinished = await self._end_runs(deadline)
        # 5. Approvals still waiting (of no run here any more): let go, so that nothing waits on.
        self.stopped = True
        for woken in list(self.approval_waiters.values()):
            woken.set()
        # 6. Sync tools still running belong to no run any more: the threads start nothing new.
        if self.tool_threads is not None:
            self.tool_threads.shutdown()
        # 7. The event logs: last, since a run's ending writes to its log.
        for url, log in list(self.event_logs.items()):
            try:
                await log.close()
            except Exception:
                logger.exception("closing the run event log %r failed", url)
        return unfinished

    async def _runs_finishing(self, until: float) -> None:
        """Wait until every run of this loop has ended by itself, or until loop time `until`."""
        loop = asyncio.get_running_loop()
        tasks = [a.task for a in self.runs.values() if a.loop is loop and a.task is not None and not a.task.done()]
        if tasks and until > loop.time():
            logger.info("draining: waiting up to %.0f s for %d run(s) to finish", until - loop.time(), len(tasks))
            await asyncio.wait(tasks, timeout=until - loop.time())

    async def _end_runs(self, deadline: float) -> list[str]:
        """Interrupt every run and wait (until `deadline`) for each to store its outcome."""
        loop = asyncio.get_running_loop()
        ending = []
        for active in list(self.runs.values()):
            if active.loop is loop:
                active.interrupt()
                ending.append(active)
            elif not active.loop.is_closed():  # a loop of another thread: told, not waited for
                active.loop.call_soon_threadsafe(active.interrupt)
                ending.append(active)
            else:  # its loop is gone, and with it the run: nothing left to end
                self.runs.pop(active.conversation_id, None)
        tasks = [a.task for a in ending if a.task is not None and a.loop is loop]
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        unfinished = [a.run_id for a in ending if self.runs.get(a.conversation_id) is a]
        if unfinished:
            # Their heartbeats stop with the process: another process's watchdog marks them interrupted.
            logger.warning("runs still executing when the process stopped: %s", ", ".join(unfinished))
        return unfinished

    def reset(self) -> None:
        """Forget everything (tests, after their runs have settled): a fresh process's state."""
        self.runs.clear()
        self.approval_waiters.clear()
        self.title_tasks.clear()
        self.sweepers.clear()
        self.warm_up_tasks.clear()
        self.event_logs.clear()
        self.open_sockets.clear()
        if self.tool_threads is not None:
            self.tool_threads.shutdown()
            self.tool_threads = None
        self.publish_retries_paused_until = 0.0
        self.draining = False
        self.drain_started = asyncio.Event()
        self.stopped = False


async def _cancel(tasks: Iterable[asyncio.Task[None]], deadline: float) -> None:
    """Cancel the tasks; wait (until `deadline`) for those of the running loop to end."""
    loop = asyncio.get_running_loop()
    here = []
    for task in tasks:
        if task.done():
            continue
        task_loop = task.get_loop()
        if task_loop is loop:
            task.cancel()
            here.append(task)
        elif not task_loop.is_closed():
            task_loop.call_soon_threadsafe(task.cancel)
    if here:
        await asyncio.wait(here, timeout=max(0.0, deadline - loop.time()))


_state = ProcessState()


def process_state() -> ProcessState:
    """This process's state: the one owner of its runs, waits, background tasks and logs."""
    return _state
