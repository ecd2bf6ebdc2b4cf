"""Where the product's Redis is, decided in one place: at `REDIS_URL`, or the master that Redis
Sentinel names (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`), asked again after a failover.

`chatsite/settings.py` builds the channel layer's and the cache's configuration from a `RedisTarget`;
code that opens its own client (the run event log) asks `redis_target()` for one. No other module
reads `REDIS_URL` to connect.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.asyncio.sentinel as async_sentinel
import redis.sentinel
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SENTINELS_MALFORMED = "REDIS_SENTINELS must be comma-separated host:port pairs, e.g. 's1:26379,s2:26379'"
URL_AND_SENTINELS = "Set REDIS_URL or REDIS_SENTINELS, not both: with Sentinel, the sentinels say where the master is"
SENTINEL_MASTER_MISSING = "REDIS_SENTINELS and REDIS_SENTINEL_MASTER (the name the sentinels monitor) go together"
SENTINEL_OPTION_UNUSED = "{name} is only read with REDIS_SENTINELS"
SENTINEL_TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}
"""The sentinels answer at once or are down: a silent one must not hold up finding the master."""
MASTER_CHECK_SECONDS = 1.0
"""How often a process asks the sentinels where the master is, besides when it connects."""

Address = tuple[str, int]


def sentinel_addresses(value: str) -> tuple[Address, ...]:
    """`REDIS_SENTINELS` (`host:port,host:port`, IPv6 hosts in brackets) as (host, port) pairs."""
    if not value:
        return ()
    addresses = []
    for entry in (part.strip() for part in value.split(",")):
        host, _, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"{SENTINELS_MALFORMED}, not {entry!r}")
        addresses.append((host, int(port)))
    return tuple(addresses)


@dataclass(frozen=True)
class RedisTarget:
    """One Redis the product uses: at `url`, or the `master` the `sentinels` name. False when neither."""

    url: str = ""
    sentinels: tuple[Address, ...] = ()
    master: str = ""
    sentinel_password: str = ""
    """The sentinels' own password (their `requirepass`), if they ask for one."""
    master_password: str = ""
    """The master's and its replicas' password, if they ask for one."""

    @classmethod
    def configured(
        cls,
        *,
        url: str,
        sentinels: tuple[Address, ...],
        master: str,
        sentinel_password: str = "",
        master_password: str = "",
    ) -> RedisTarget:
        """The target the settings describe; ImproperlyConfigured, naming the variable, if they contradict."""
        if url and sentinels:
            raise ImproperlyConfigured(URL_AND_SENTINELS)
        if bool(sentinels) != bool(master):
            raise ImproperlyConfigured(SENTINEL_MASTER_MISSING)
        for name, value in (
            ("REDIS_SENTINEL_PASSWORD", sentinel_password),
            ("REDIS_SENTINEL_MASTER_PASSWORD", master_password),
        ):
            if value and not sentinels:
                raise ImproperlyConfigured(SENTINEL_OPTION_UNUSED.format(name=name))
        return cls(url, sentinels, master, sentinel_password, master_password)

    def __bool__(self) -> bool:
        return bool(self.url or self.sentinels)

    @property
    def name(self) -> str:
        """Which Redis: the URL, or the sentinels and the master's name (a key of `ProcessState.event_logs`)."""
        if not self.sentinels:
            return self.url
        return "sentinel://" + ",".join(f"{host}:{port}" for host, port in self.sentinels) + f"/{self.master}"

    def _sentinel_kwargs(self) -> dict[str, Any]:
        return {**SENTINEL_TIMEOUTS, **({"password": self.sentinel_password} if self.sentinel_password else {})}

    def _master_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, **({"password": self.master_password} if self.master_password else {})}

    def channel_layer_host(self, **options: Any) -> dict[str, Any]:
        """One entry of channels-redis's `hosts` (both layers make their pools with its `create_pool`)."""
        if not self.sentinels:
            return {"address": self.url, **options}
        return {
            "sentinels": list(self.sentinels),
            "master_name": self.master,
            "sentinel_kwargs": self._sentinel_kwargs(),
            "connection_class": MasterFollowingConnection,
            # A subscriber only reads: its PING makes it send, and so follow the master, as often.
            "health_check_interval": MASTER_CHECK_SECONDS,
            **self._master_kwargs(options),
        }

    def cache(self, **options: Any) -> dict[str, Any]:
        """The `CACHES` entry of Django's RedisCache here (through `SentinelMasterPool` with Sentinel)."""
        if not self.sentinels:
            return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": self.url, "OPTIONS": options}
        sentinel_options = {
            "pool_class": "conversations.redis_clients.SentinelMasterPool",
            "sentinels": list(self.sentinels),
            "master_name": self.master,
            "sentinel_kwargs": self._sentinel_kwargs(),
        }
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            # A label only (the pool asks the sentinels), one server: Django reads a comma as a second.
            "LOCATION": f"sentinel://{self.master}",
            "OPTIONS": {**sentinel_options, **self._master_kwargs(options)},
        }

    def async_client(self, **options: Any) -> aioredis.Redis:
        """A new asyncio client (its connections belong to the event loop that first uses them)."""
        if not self.sentinels:
            return aioredis.Redis.from_url(self.url, **options)
        sentinel = async_sentinel.Sentinel(self.sentinels, sentinel_kwargs=self._sentinel_kwargs())
        return sentinel.master_for(
            self.master,
            redis_class=_SentinelMasterClient,
            connection_class=MasterFollowingConnection,
            **self._master_kwargs(options),
        )


class MasterFollowingConnection(async_sentinel.SentinelManagedConnection):
    """A connection to the master Sentinel names that moves to a new master within about
    `MASTER_CHECK_SECONDS` of the sentinels naming it.

    redis-py asks the sentinels only when it connects. A master that `SENTINEL FAILOVER` replaced
    goes on taking writes until Sentinel demotes it, some 10 s later, and then drops them (measured
    in tests/deployment/test_sentinel_live.py): a connection left open to it would write there all
    that time. So each pool asks the sentinels again at most once per interval, in the background
    (no command waits for them), and a connection to a master they no longer name reconnects
    before it sends (a subscriber subscribes again as it reconnects).
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        pool = self.connection_pool
        _ask_sentinels_when_due(pool)
        if self.is_connected and pool.master_address not in (None, (self.host, self.port)):
            await self.disconnect()
            await self.connect()  # to the master the sentinels name now
        await super().send_packed_command(command, check_health)


def _ask_sentinels_when_due(pool: async_sentinel.SentinelConnectionPool) -> None:
    """Update `pool.master_address` in the background if it was not asked for in the last interval."""
    loop = asyncio.get_running_loop()
    if loop.time() < getattr(pool, "next_master_check", 0.0):
        return
    pool.next_master_check = loop.time() + MASTER_CHECK_SECONDS
    # On a change it also closes the pool's idle connections. Sentinels that cannot be asked leave
    # the connections as they are: the next connect says what is wrong.
    pool.master_check = loop.create_task(pool.get_master_address())  # held while it runs
    pool.master_check.add_done_callback(lambda task: task.cancelled() or task.exception())


class _SentinelMasterClient(aioredis.Redis):
    """A client of the master Sentinel names: closing it also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        await self.connection_pool.sentinel_manager.aclose()


class SentinelMasterPool(redis.sentinel.SentinelConnectionPool):
    """Django's RedisCache through Sentinel (its `OPTIONS["pool_class"]`).

    The cache makes its pool with `pool_class.from_url(LOCATION, **OPTIONS)`: here the location is
    only a label, and the options name the sentinels and the master. A connection asks the sentinels
    where the master is when it connects; one to a demoted master fails and the next reconnects.
    """

    @classmethod
    def from_url(  # type: ignore[override]
        cls,
        url: str,
        *,
        sentinels: list[Address],
        master_name: str,
        sentinel_kwargs: dict[str, Any],
        **options: Any,
    ) -> SentinelMasterPool:
        return cls(master_name, redis.sentinel.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs), **options)


def redis_target() -> RedisTarget:
    """The Redis of the current settings (read at each call: tests change them)."""
    return RedisTarget.configured(
        url=settings.REDIS_URL,
        sentinels=settings.REDIS_SENTINELS,
        master=settings.REDIS_SENTINEL_MASTER,
        sentinel_password=settings.REDIS_SENTINEL_PASSWORD,
        master_password=settings.REDIS_SENTINEL_MASTER_PASSWORD,
    )
