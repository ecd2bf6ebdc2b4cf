"""Where Redis is, from the environment: `REDIS_URL`, or the master Sentinel names (`REDIS_SENTINELS`).

The settings are read as a process starts, so the settings' own tests run `manage.py` with an
environment (as tests/test_deploy.py does); what they build from it is checked here without a network.
"""

from __future__ import annotations

import json

import pytest
import redis.asyncio.sentinel as async_sentinel
from channels_redis.utils import create_pool
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured

from conversations.redis_clients import (
    SENTINEL_MASTER_MISSING,
    SENTINEL_OPTION_UNUSED,
    SENTINELS_MALFORMED,
    URL_AND_SENTINELS,
    MasterFollowingConnection,
    RedisTarget,
    SentinelMasterPool,
    sentinel_addresses,
)
from tests.test_deploy import PRODUCTION, manage

SENTINEL_ENV = {
    **PRODUCTION,
    "REDIS_URL": "",
    "REDIS_SENTINELS": "sentinel-1:26379, sentinel-2:26380,[::1]:26381",
    "REDIS_SENTINEL_MASTER": "mymaster",
}
SHOW_REDIS = """
import json
from django.conf import settings
from conversations.event_log import get_event_log
layer = settings.CHANNEL_LAYERS["default"]
print(json.dumps({
    "layer": layer["BACKEND"], "host": layer["CONFIG"]["hosts"][0], "cache": settings.CACHES["default"],
    "log": type(get_event_log()).__name__,
}, default=lambda value: f"{value.__module__}.{value.__qualname__}"))
"""
TARGET = RedisTarget(sentinels=(("sentinel-1", 26379), ("sentinel-2", 26379)), master="mymaster")


def redis_settings(env: dict[str, str]) -> dict:
    result = manage("shell", "-c", SHOW_REDIS, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def refusal(env: dict[str, str]) -> str:
    """Why the settings refuse to start with `env`."""
    result = manage("check", env=env)
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_sentinels_configure_the_channel_layer_the_cache_and_the_event_log():
    shown = redis_settings(SENTINEL_ENV)

    assert shown["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    host = shown["host"]
    assert host["sentinels"] == [["sentinel-1", 26379], ["sentinel-2", 26380], ["::1", 26381]]
    assert host["master_name"] == "mymaster"
    assert host["connection_class"] == "conversations.redis_clients.MasterFollowingConnection"
    assert "address" not in host and "password" not in host["sentinel_kwargs"]
    cache = shown["cache"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["OPTIONS"]["pool_class"] == "conversations.redis_clients.SentinelMasterPool"
    assert cache["OPTIONS"]["sentinels"] == host["sentinels"] and cache["OPTIONS"]["master_name"] == "mymaster"
    assert shown["log"] == "RedisEventLog"


def test_the_core_layer_goes_through_the_sentinels_too():
    shown = redis_settings({**SENTINEL_ENV, "REDIS_CHANNEL_LAYER": "core"})
    assert shown["layer"] == "channels_redis.core.RedisChannelLayer"
    assert shown["host"]["master_name"] == "mymaster"


def test_the_passwords_go_to_the_sentinels_and_to_the_master_each_its_own():
    env = {**SENTINEL_ENV, "REDIS_SENTINEL_PASSWORD": "for-sentinels", "REDIS_SENTINEL_MASTER_PASSWORD": "for-master"}
    shown = redis_settings(env)

    assert shown["host"]["sentinel_kwargs"]["password"] == "for-sentinels"
    assert shown["host"]["password"] == "for-master"
    assert shown["cache"]["OPTIONS"]["sentinel_kwargs"]["password"] == "for-sentinels"
    assert shown["cache"]["OPTIONS"]["password"] == "for-master"
    assert "for-" not in shown["cache"]["LOCATION"]


def test_a_url_and_sentinels_together_stop_the_start():
    assert URL_AND_SENTINELS in refusal({**SENTINEL_ENV, "REDIS_URL": "redis://127.0.0.1:6379/0"})


@pytest.mark.parametrize("sentinels", ["sentinel-1", "sentinel-1:port", "sentinel-1:0", ":26379", "a:1,,b:2"])
def test_a_malformed_sentinel_address_stops_the_start_naming_the_variable(sentinels):
    assert SENTINELS_MALFORMED in refusal({**SENTINEL_ENV, "REDIS_SENTINELS": sentinels})


def test_sentinels_and_the_master_name_go_together():
    assert SENTINEL_MASTER_MISSING in refusal({**SENTINEL_ENV, "REDIS_SENTINEL_MASTER": ""})
    assert SENTINEL_MASTER_MISSING in refusal({**PRODUCTION, "REDIS_SENTINEL_MASTER": "mymaster"})


def test_a_sentinel_password_without_sentinels_stops_the_start():
    expected = SENTINEL_OPTION_UNUSED.format(name="REDIS_SENTINEL_PASSWORD")
    assert expected in refusal({**PRODUCTION, "REDIS_URL": "redis://x", "REDIS_SENTINEL_PASSWORD": "secret"})


def test_sentinel_addresses_read_hosts_ports_and_bracketed_ipv6():
    assert sentinel_addresses("") == ()
    assert sentinel_addresses(" a:1 ,[fe80::1]:26379") == (("a", 1), ("fe80::1", 26379))
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINELS"):
        sentinel_addresses("a:65536")


def test_a_target_is_true_only_with_a_url_or_sentinels_and_its_name_holds_no_password():
    assert not RedisTarget() and RedisTarget(url="redis://x") and TARGET
    secret = RedisTarget(sentinels=(("s", 1),), master="m", sentinel_password="p1", master_password="p2")
    assert secret.name == "sentinel://s:1/m"


def test_the_layer_host_makes_a_pool_that_asks_the_sentinels_for_the_master():
    pool = create_pool(TARGET.channel_layer_host(socket_timeout=15))

    assert isinstance(pool, async_sentinel.SentinelConnectionPool)
    assert pool.service_name == "mymaster" and pool.is_master
    assert pool.connection_class is MasterFollowingConnection
    assert pool.connection_kwargs["socket_timeout"] == 15


def test_the_cache_makes_a_pool_that_asks_the_sentinels_for_the_master():
    entry = TARGET.cache(socket_timeout=2)
    cache = RedisCache(entry["LOCATION"], {"OPTIONS": entry["OPTIONS"]})

    pool = cache._cache._get_connection_pool(write=True)

    assert cache._cache._get_connection_pool(write=False) is pool, "reads and writes, one pool"
    assert isinstance(pool, SentinelMasterPool)
    assert pool.service_name == "mymaster"
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["port"] == 26379
    assert pool.connection_kwargs["socket_timeout"] == 2


def test_the_event_log_client_asks_the_sentinels_for_the_master():
    client = TARGET.async_client(socket_timeout=5)

    assert isinstance(client.connection_pool, async_sentinel.SentinelConnectionPool)
    assert client.connection_pool.connection_class is MasterFollowingConnection
    assert RedisTarget(url="redis://127.0.0.1:6379/3").async_client().connection_pool.connection_kwargs["db"] == 3
