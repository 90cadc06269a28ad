"""The embedded server: one owner per data folder, guests that join it, deaf to the terminal."""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.store.redis_server import EmbeddedRedis, EmbeddedServerBusy


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ping(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=2) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def noted(data_dir: Path) -> list[str]:
    """What the owner wrote in the folder's lock file: its pid, its server's pid, the URL."""
    return (data_dir / "valkey" / "threadbot.lock").read_text().split()


def process_status(pid: int) -> dict[str, str]:
    """The fields of /proc/PID/status (`SigBlk`, `ShdPnd`: signal masks in hex)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {name: value.strip() for name, _, value in (line.partition(":") for line in lines)}


def signal_mask(value: str) -> int:
    return int(value, 16)


def bit(sig: signal.Signals) -> int:
    return 1 << (sig - 1)


def test_start_serves_on_loopback_with_its_data_in_the_folder(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    url = server.start()
    try:
        assert url == server.url
        assert url.startswith("redis://127.0.0.1:")
        assert ping(url)
        with redis.Redis.from_url(url) as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert Path(client.config_get("dir")["dir"]).resolve() == (tmp_path / "valkey")
        our_pid, server_pid, noted_url = noted(tmp_path)
        assert our_pid == str(os.getpid())
        assert b"valkey-server" in Path(f"/proc/{server_pid}/cmdline").read_bytes()
        assert noted_url == url
    finally:
        server.stop()
    assert not ping(url)
    server.stop()  # a second stop is harmless


def test_what_was_written_survives_a_restart(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    with redis.Redis.from_url(first.start()) as client:
        client.rpush("session", "hello")
    first.stop()
    second = EmbeddedRedis(tmp_path)  # the folder is free again once the owner stopped
    try:
        with redis.Redis.from_url(second.start()) as client:
            assert client.lrange("session", 0, -1) == [b"hello"]
    finally:
        second.stop()


def test_a_second_server_on_the_same_folder_is_refused(
    owner: EmbeddedRedis, tmp_path: Path
) -> None:
    with pytest.raises(EmbeddedServerBusy, match="REDIS_URL"):
        EmbeddedRedis(tmp_path).start()
    assert ping(owner.url)  # the refused one touched nothing


def test_a_guest_joins_the_owners_server_and_leaves_it_running(
    owner: EmbeddedRedis, tmp_path: Path
) -> None:
    guest = EmbeddedRedis(tmp_path, join=True)
    assert guest.start() == owner.url
    assert guest.url == owner.url
    guest.stop()
    assert ping(owner.url)
    with pytest.raises(RuntimeError, match="not started"):
        _ = guest.url
    # The owner still holds the folder: another plain start is refused.
    with pytest.raises(EmbeddedServerBusy):
        EmbeddedRedis(tmp_path).start()


def test_a_guest_is_refused_when_the_owner_has_no_server_yet(tmp_path: Path) -> None:
    """The lock is held, but no URL is noted (the owner is still starting its server)."""
    folder = tmp_path / "valkey"
    folder.mkdir()
    with open(folder / "threadbot.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("12345\n")
        lock.flush()
        with pytest.raises(EmbeddedServerBusy):
            EmbeddedRedis(tmp_path, join=True).start()


def test_a_guest_is_refused_when_the_noted_server_does_not_answer(
    owner: EmbeddedRedis, tmp_path: Path
) -> None:
    folder = tmp_path / "valkey"
    pids = noted(tmp_path)[:2]
    # Still locked by the owner, but the URL noted leads nowhere.
    (folder / "threadbot.lock").write_text("\n".join([*pids, "redis://127.0.0.1:1"]) + "\n")
    with pytest.raises(EmbeddedServerBusy):
        EmbeddedRedis(tmp_path, join=True).start()


def test_the_server_ignores_the_terminals_ctrl_c(owner: EmbeddedRedis, tmp_path: Path) -> None:
    server_pid = int(noted(tmp_path)[1])
    assert signal_mask(process_status(server_pid)["SigBlk"]) & bit(signal.SIGINT)
    os.kill(server_pid, signal.SIGINT)
    # Blocked, the signal stays pending instead of being handled: no shutdown can follow.
    status = process_status(server_pid)
    assert signal_mask(status["ShdPnd"]) & bit(signal.SIGINT)
    assert status["State"].split()[0] != "Z"
    assert ping(owner.url)
    # And the test process itself got its own mask back.
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_sigterm_still_stops_the_server(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    server_pid = int(noted(tmp_path)[1])
    assert not signal_mask(process_status(server_pid)["SigBlk"]) & bit(signal.SIGTERM)
    server.stop()
    assert not ping(url)
