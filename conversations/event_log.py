"""Each streaming run's events, kept so that a tab joining late (on any process) can catch up.

One interface, two backends: in this process's memory when there is one process, or a
Redis Stream per run (`REDIS_URL` or `REDIS_SENTINELS` set) shared by every process. A run's
log expires a while after its `done`.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from agent_runtime.events import Event
from conversations.process import process_state
from conversations.redis_clients import RedisTarget, redis_target

KEY_PREFIX = "agentchat:run:"
LIVE_TTL_SECONDS = 24 * 3600
DONE_TTL_SECONDS = 600
DELETE_CHUNK = 500
"""Keys per `UNLINK` when runs' logs are deleted: one command stays short however many runs go."""
XADD_ID_TAKEN = "The ID specified in XADD is equal or smaller than the target stream top item"
"""Redis's refusal of an entry whose id is not above the stream's last: that `seq` is logged already."""


class RunEventLog(Protocol):
    """Append-only event log of runs, keyed by run id."""

    async def append(self, run_id: str, event: Event, text: str) -> None:
        """Add the run's next event (`text` is its JSON, encoded once by the caller)."""

    async def read(self, run_id: str) -> list[Event]:
        """Every event of the run so far (empty when unknown or expired)."""

    async def delete(self, run_ids: Iterable[str]) -> None:
        """Forget these runs' events now (their conversation was deleted); unknown ones are skipped."""

    async def finish(self, run_id: str) -> None:
        """The run is over: keep its events a little longer, then forget them."""

    async def ping(self) -> None:
        """One round trip to where the events are; raises when it is unreachable."""

    async def close(self) -> None:
        """The process stops: let go of the log's connections (a later call opens new ones)."""


class MemoryEventLog:
    """The log of a single-process deployment."""

    def __init__(self) -> None:
        self._runs: dict[str, list[Event]] = {}

    async def append(self, run_id: str, event: Event, text: str) -> None:
        self._runs.setdefault(run_id, []).append(event)

    async def read(self, run_id: str) -> list[Event]:
        return list(self._runs.get(run_id, ()))

    async def delete(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            self._runs.pop(run_id, None)

    async def finish(self, run_id: str) -> None:
        asyncio.get_running_loop().call_later(DONE_TTL_SECONDS, self._runs.pop, run_id, None)

    async def ping(self) -> None:
        pass  # always here

    async def close(self) -> None:
        pass  # no connections: the events go with the process


class RedisEventLog:
    """A Redis Stream per run: `XADD` per event (its id the event's `seq`), `XRANGE` to read, `EXPIRE`
    after `done`."""

    def __init__(self, target: RedisTarget | str) -> None:
        """`target`: where Redis is (`redis_target()`); a URL is short for `RedisTarget(url=...)`."""
        self._target = RedisTarget(url=target) if isinstance(target, str) else target
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._target.async_client(socket_timeout=5, socket_connect_timeout=2, max_connections=1000)
            self._clients[loop] = client
        return client

    async def append(self, run_id: str, event: Event, text: str) -> None:
        key = KEY_PREFIX + run_id
        async with self._client().pipeline(transaction=False) as pipe:
            # The entry's id is the event's `seq`: appending it again (a retry after a dropped reply)
            # is refused by Redis, so each `seq` is in the log once, and never after a later one.
            pipe.xadd(key, {"e": text}, id=f"{event['seq']}-0")
            pipe.expire(key, LIVE_TTL_SECONDS)  # every write: a log recreated after it expired expires too
            try:
                await pipe.execute()
            except ResponseError as error:
                if XADD_ID_TAKEN not in str(error):
                    raise

    async def read(self, run_id: str) -> list[Event]:
        entries = await self._client().xrange(KEY_PREFIX + run_id)
        return [json.loads(fields[b"e"]) for _id, fields in entries]

    async def delete(self, run_ids: Iterable[str]) -> None:
        keys = [KEY_PREFIX + run_id for run_id in run_ids]
        for start in range(0, len(keys), DELETE_CHUNK):
            await self._client().unlink(*keys[start : start + DELETE_CHUNK])  # freed in Redis's background

    async def finish(self, run_id: str) -> None:
        await self._client().expire(KEY_PREFIX + run_id, DONE_TTL_SECONDS)

    async def ping(self) -> None:
        await self._client().ping()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        clients, self._clients = dict(self._clients), weakref.WeakKeyDictionary()
        for client_loop, client in clients.items():
            # A client's connections belong to its loop: only the running loop's can be closed from here.
            if client_loop is loop:
                await client.aclose()


def get_event_log() -> RunEventLog:
    """The log for the current settings (Redis when `REDIS_URL` or `REDIS_SENTINELS` is set)."""
    target = redis_target()
    logs = process_state().event_logs
    if target.name not in logs:
        logs[target.name] = RedisEventLog(target) if target else MemoryEventLog()
    return logs[target.name]


async def redis_ping() -> None:
    """One round trip to the Redis the run event logs use (nothing without Redis); raises when it fails."""
    await get_event_log().ping()
