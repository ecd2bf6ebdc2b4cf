"""A private Redis Sentinel deployment on loopback: a master, one replica and three sentinels.

    with sentinel_cluster(tmp_path) as cluster:
        env = {"REDIS_SENTINELS": cluster.sentinels_setting, "REDIS_SENTINEL_MASTER": cluster.master_name}
        cluster.failover()  # the replica is the master now, the old master its replica

Each is a `redis-server` subprocess on a free port, killed on the way out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.live_server import free_port
from tests.services import require_redis_server_binary
from tests.support.waits import wait_until

MASTER_NAME = "mymaster"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class SentinelCluster:
    """The processes and ports of one Sentinel deployment; `master_port` follows failovers."""

    master_port: int
    replica_port: int
    sentinel_ports: list[int]
    master_name: str = MASTER_NAME
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def sentinels_setting(self) -> str:
        """The value of `REDIS_SENTINELS`."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[index], socket_timeout=2, decode_responses=True)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2)

    def masters_named(self) -> set[int]:
        """The master's port as each sentinel names it (one port once they agree)."""
        ports = set()
        for index in range(len(self.sentinel_ports)):
            with self.sentinel(index) as sentinel:
                _host, port = sentinel.sentinel_get_master_addr_by_name(self.master_name)
            ports.add(int(port))
        return ports

    def ready(self) -> bool:
        """Whether the replica is in sync and every sentinel knows the master, the replica and the others."""
        with self.node(self.replica_port) as replica:
            if replica.info("replication").get("master_link_status") != "up":
                return False
        for index in range(len(self.sentinel_ports)):
            with self.sentinel(index) as sentinel:
                state = sentinel.sentinel_master(self.master_name)
                replicas = sentinel.sentinel_slaves(self.master_name)
            if (
                int(state["num-other-sentinels"]) < len(self.sentinel_ports) - 1
                or int(state["port"]) != self.master_port
            ):
                return False
            # A replica the sentinel has not had an INFO from yet (`info-refresh` 0) is not one it promotes.
            if not any(
                r["flags"] == "slave" and r["info-refresh"] and r["master-link-status"] == "ok" for r in replicas
            ):
                return False
        return True

    def failover(self, timeout: float = 30) -> float:
        """`SENTINEL FAILOVER`: the seconds until every sentinel names the replica. The two swap
        `master_port` and `replica_port`; Sentinel demotes the old master later (`demoted`)."""
        started = time.monotonic()
        with self.sentinel() as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", self.master_name)
        promoted = self.replica_port
        wait_until(lambda: self.masters_named() == {promoted}, timeout, 0.02, "every sentinel names the new master")
        self.master_port, self.replica_port = promoted, self.master_port
        return time.monotonic() - started

    def role(self, port: int) -> str:
        with self.node(port) as node:
            return node.info("replication")["role"]

    def demoted(self, port: int, timeout: float = 30) -> None:
        """Wait until the old master at `port` is a replica (Sentinel's doing, some 10 s after a failover)."""
        wait_until(lambda: self.role(port) == "slave", timeout, 0.02, f"the old master {port} follows")

    def kill_master(self) -> None:
        """SIGKILL the master, as a crash of its machine would stop it."""
        (process,) = [p for p in self.processes if f"--port {self.master_port} " in " ".join(p.args) + " "]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _sentinel_config(directory: Path, port: int, master_port: int) -> Path:
    path = directory / f"sentinel-{port}.conf"  # one file each: a sentinel rewrites its own
    path.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
    )
    return path


@contextmanager
def sentinel_cluster(directory: Path) -> Iterator[SentinelCluster]:
    """Start a master, its replica and three sentinels in `directory`; ready when yielded, killed after."""
    binary = require_redis_server_binary()
    cluster = SentinelCluster(master_port=free_port(), replica_port=free_port(), sentinel_ports=[])

    def start(*args: str) -> None:
        cluster.processes.append(
            subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, start_new_session=True, cwd=directory)
        )

    master = str(cluster.master_port)
    try:
        for port, role in ((cluster.master_port, ()), (cluster.replica_port, ("--replicaof", "127.0.0.1", master))):
            data = directory / f"redis-{port}"  # each its own: a replica writes the RDB it loads
            data.mkdir()
            start(
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
                *role,
            )
        for _ in range(3):
            port = free_port()
            cluster.sentinel_ports.append(port)
            start(str(_sentinel_config(directory, port, cluster.master_port)), "--sentinel")
        wait_until(_answers(cluster.ready), 30, 0.1, "the replica and the sentinels are ready")
        yield cluster
    finally:
        cluster.stop()


def _answers(check):
    """`check`, False while a process is still starting (connection refused)."""

    def answered() -> bool:
        try:
            return check()
        except (redis.ConnectionError, redis.ResponseError):
            return False

    return answered
