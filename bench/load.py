"""One worker's capacity: N conversations at once through the Slack HTTP path, and the CPU each
streamed chunk costs with LangChain against the raw `openai` client.

Real `threadbot slack` worker processes (HTTP mode, signed events as Slack sends them) answer
against the local Slack emulation and the local OpenAI-compatible server, each in a process of
its own (bench/_fakes.py), sharing one Redis. Every conversation has a channel of its own, as
real load would. Per N: answers complete, errors shown to users, when text showed against the
model's first and last token, the workers' CPU and peak memory. Then the raw-client floor: CPU
per chunk of the same answers streamed in this process by `openai.AsyncOpenAI` and by the bot's
chain.

    python -m bench.load                        # quick: 25 and 100 conversations, 2 s answers
    python -m bench.load --full                 # the issue's setting: 10 s answers of 200 chunks
                                                # at 25 50 100 200 500
    python -m bench.load --full --sizes 200 --workers 2 [--redis-url redis://host:6379/0]
    python -m bench.load --full --sizes 200 --workers 2 --cluster   # on a 3-node Valkey cluster
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench._answer import CHUNK_CHARS, sample_answer
from bench._floor import floor
from bench._table import print_table
from core import MARKER, EmbeddedRedis, Settings
from tests.fakes.fake_slack import BOT_USER_ID, TEAM_ID

ROOT = Path(__file__).resolve().parent.parent
SECRET = "load-bench-signing-secret"
QUESTION = "how do I reset a conversation?"
TICK_S = os.sysconf("SC_CLK_TCK")
# What a user is shown when the bot fails or gives up (core/turn/runner.py, core/errors.py).
ERROR_SIGNS = ("⚠️", "busy", "sorry", "try again")


@dataclass(frozen=True)
class Options:
    sizes: list[int]
    seconds: float
    chars: int
    workers: int
    redis_url: str | None
    cluster: bool
    floor_streams: int
    profile: Path | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def _spawn(args: list[str], env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[Any]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, **kw)


def _stop(processes: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM (a worker drains, a profiled one writes its profile), then SIGKILL after 60 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _fake(kind: str, *extra: str) -> tuple[subprocess.Popen[Any], dict[str, str]]:
    process = _spawn(["-m", "bench._fakes", kind, *extra], stdout=subprocess.PIPE)
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def _mention(channel: str, text: str, event_id: str) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    event = {"type": "app_mention", "user": "U0LOAD", "text": f"<@{BOT_USER_ID}> {text}"}
    event |= {"ts": ts, "channel": channel, "event_ts": ts}
    return {
        "token": "x",
        "team_id": TEAM_ID,
        "api_app_id": "A0LOAD",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": event,
    }


async def _send(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, float]:
    """Deliver one event as Slack does (signed); its HTTP status and seconds to the ack."""
    raw = json.dumps(body)
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:{raw}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}
    started = time.monotonic()
    async with http.post(
        url, data=raw, headers=headers | {"Content-Type": "application/json"}
    ) as r:
        return r.status, time.monotonic() - started


async def _wait_listening(port: int, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise TimeoutError("worker did not start")


def _done(channel: dict[str, Any]) -> bool:
    texts = channel["texts"]
    if channel["ephemeral"] or any("⚠️" in t for t in texts):
        return True
    return bool(texts) and not texts[-1].endswith(MARKER.strip()) and texts[-1] != "…"


async def _round(
    n: int,
    tag: str,
    opts: Options,
    http: aiohttp.ClientSession,
    workers: list[tuple[subprocess.Popen[Any], str]],
    slack: dict[str, str],
    model: dict[str, str],
) -> tuple[str, list[str]]:
    """Ask `n` questions at once, one conversation each; one table row and notes."""
    answer_tail = sample_answer(opts.chars)[-40:]
    channels = [f"C{tag}{i:04d}" for i in range(n)]
    questions = {c: f"{tag} #{i}: {QUESTION}" for i, c in enumerate(channels)}
    cpu_before = [_cpu_s(p.pid) for p, _ in workers]
    targets = itertools.cycle([url for _, url in workers])  # round robin, as a load balancer
    sends = [
        _send(http, next(targets), _mention(c, questions[c], f"Ev{tag}{i:04d}"))
        for i, c in enumerate(channels)
    ]
    started = time.monotonic()
    acks = await asyncio.gather(*sends)
    deadline = started + opts.seconds + 60 + n * 0.2
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        async with http.get(slack["control"], params={"prefix": f"C{tag}"}) as r:
            seen = await r.json()
        if len(seen) == n and all(_done(c) for c in seen.values()):
            break
    elapsed = time.monotonic() - started
    cpu = sum(_cpu_s(p.pid) for p, _ in workers) - sum(cpu_before)
    async with http.get(model["control"], params={"prefix": tag}) as r:
        streams = await r.json()

    complete = errors = 0
    told: dict[str, int] = {}  # each error line users were shown, and how often
    first_lags: list[float] = []
    final_lags: list[float] = []
    chunks = 0
    last_final = started
    for channel in channels:
        shown = seen.get(channel, {"texts": [], "ephemeral": [], "first_text_at": None})
        text = "\n".join(shown["texts"])
        said = [text, *shown["ephemeral"]]
        if any(sign in t.lower() for t in said for sign in ERROR_SIGNS):
            errors += 1
            for line in (line for t in said for line in t.splitlines()):
                if any(sign in line.lower() for sign in ERROR_SIGNS):
                    told[line[:90]] = told.get(line[:90], 0) + 1
        stream = streams.get(questions[channel])
        if stream is None or answer_tail not in text or text.endswith(MARKER.strip()):
            continue
        complete += 1
        chunks += stream["chunks"]
        if shown["first_text_at"] is not None:
            first_lags.append(shown["first_text_at"] - stream["first_at"])
        final_lags.append(shown["final_at"] - stream["last_at"])
        last_final = max(last_final, shown["final_at"])
    bad_acks = sum(status != 200 for status, _ in acks)
    ack_p99 = _pct([s for _, s in acks], 0.99)
    rate = complete / max(last_final - started, 1e-9)  # from the first event sent
    row = (
        f"{n:>4} | {complete:>4} | {errors:>4} | {rate:5.1f} | "
        f"{_pct(first_lags, 0.5):5.2f} {_pct(first_lags, 0.99):5.2f} | "
        f"{_pct(final_lags, 0.5):5.2f} {_pct(final_lags, 0.99):5.2f} | "
        f"{cpu / max(n, 1) * 1000:6.0f} ms {cpu / max(chunks, 1) * 1e6:5.0f} µs | "
        f"{max(_peak_rss_mb(p.pid) for p, _ in workers):5.0f} MB"
    )
    notes = [] if not bad_acks else [f"N={n}: {bad_acks} events not acknowledged with 200"]
    if complete < n:
        notes.append(f"N={n}: {n - complete} answers not complete after {elapsed:.0f} s")
    notes += [f"N={n}: {count} told: {line}" for line, count in told.items()]
    again = sum(s["times"] > 1 for s in streams.values())
    if again:
        notes.append(
            f"N={n}: {again} questions answered more than once (recovered after a failure)"
        )
    notes.append(
        f"N={n}: ack p99 {ack_p99 * 1000:.0f} ms, worker CPU {cpu:.1f} s in {elapsed:.0f} s"
    )
    return row, notes


async def bench(opts: Options) -> None:
    fakes_cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        embedded = None
        redis_url = opts.redis_url
        cluster = None
        if opts.cluster:
            from tests.valkey_cluster import ValkeyCluster

            cluster = await asyncio.to_thread(ValkeyCluster(data / "cluster").start)
            redis_url = cluster.url
        elif redis_url is None:
            embedded = EmbeddedRedis(data / "redis")
            redis_url = await asyncio.to_thread(embedded.start)
        pieces = str(-(-opts.chars // CHUNK_CHARS))
        model_args = ["--chars", str(opts.chars), "--chunk-chars", str(CHUNK_CHARS)]
        slack_p, slack = _fake("slack")
        model_p, model = _fake("model", *model_args, "--seconds", str(opts.seconds))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": tmp,
            "PYTHONPATH": str(ROOT),
            "THREADBOT_DATA_DIR": str(data / "bot"),
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": f"load-{os.getpid()}:",
            "HISTORY_KEY_PREFIX": f"load-{os.getpid()}:message_store:",
            "OPENAI_BASE_URL": model["url"],
            "OPENAI_API_KEY": "bench",
            "EMBEDDINGS": "local",
            "SLACK_BOT_TOKEN": "xoxb-load",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack["url"],
            "LOG_LEVEL": "WARNING",
        }
        workers: list[tuple[subprocess.Popen[Any], str]] = []
        try:
            ingest = ["-m", "bots.cli.main", "ingest", str(ROOT / "examples" / "docs")]
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            await asyncio.to_thread(_spawn(ingest, env, **quiet).wait)
            log = (data / "workers.log").open("ab")
            for _ in range(opts.workers):
                port = _free_port()
                worker = ["-m", "bots.cli.main", "slack"]
                if opts.profile is not None:  # written when the worker exits
                    out = opts.profile / f"worker-{len(workers)}.prof"
                    worker = ["-m", "cProfile", "-o", str(out), *worker]
                process = _spawn(worker, env | {"SLACK_PORT": str(port)}, stdout=log, stderr=log)
                workers.append((process, f"http://127.0.0.1:{port}/slack/events"))
                await _wait_listening(port, process)
            limits = aiohttp.TCPConnector(limit=0)
            rows, notes = [], []
            async with aiohttp.ClientSession(connector=limits) as http:
                # First answers load code and open connections: not what one answer costs.
                await _round(2 * opts.workers, "W", opts, http, workers, slack, model)
                for n, size in enumerate(opts.sizes):
                    row, said = await _round(size, f"L{n}", opts, http, workers, slack, model)
                    rows.append(row)
                    notes += said
                    print(f"N={size} done", file=sys.stderr, flush=True)
            us = {}
            if opts.floor_streams:
                us = await floor(model["url"], data / "floor", opts.floor_streams, 2)
            fakes_cpu = {"fake Slack": _cpu_s(slack_p.pid), "fake model": _cpu_s(model_p.pid)}
        finally:
            _stop([p for p, _ in workers])
            _stop([slack_p, model_p])
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            if cluster is not None:
                await asyncio.to_thread(cluster.stop)

    defaults = {
        name.upper(): Settings.model_fields[name].default
        for name in ("slack_edit_interval_ms", "slack_post_interval_ms", "redis_max_connections")
    }
    print(
        f"\nsettings: {opts.workers} worker(s), answers of {opts.chars} chars in {pieces} chunks "
        f"over {opts.seconds:g} s, a channel per conversation, "
        + "  ".join(f"{k}={v}" for k, v in defaults.items())
        + f"  REDIS_URL={_store_name(opts)}  docs: examples/docs"
        f"  cores: {os.cpu_count()}"
    )
    print("lags in s (text shown in the fake Slack minus the model's token); CPU: all workers\n")
    heading = (
        "   N | done | errs | ans/s | first p50 p99 | final p50 p99 | CPU/answer CPU/chunk "
        "|  peak RSS"
    )
    print(heading)
    print("-" * len(heading))
    for row in rows:
        print(row)
    for note in notes:
        print(f"  {note}")
    print()
    floor_rows = (
        [
            ("raw openai.AsyncOpenAI (the SDK's defaults)", f"{us['raw']:.0f} µs"),
            ("raw, validating chunks as the bot's client does", f"{us['validated']:.0f} µs"),
            ("bot's LangChain chain (core/answer/answerers.py)", f"{us['chain']:.0f} µs"),
            ("ratio LangChain / raw", f"{us['chain'] / us['raw']:.2f}×"),
            ("ratio LangChain / raw validating", f"{us['chain'] / us['validated']:.2f}×"),
        ]
        if us
        else []
    )
    print_table(
        ("floor: CPU per streamed chunk, in-process", f"{opts.floor_streams} answers at once"),
        [
            *floor_rows,
            *((f"{name} process CPU, whole run", f"{s:.1f} s") for name, s in fakes_cpu.items()),
        ],
    )


def _store_name(opts: Options) -> str:
    if opts.cluster:
        return "a 3-node Valkey cluster (redis+cluster://)"
    return "given" if opts.redis_url else "embedded"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10 s answers of 200 chunks")
    parser.add_argument("--sizes", type=int, nargs="+", help="conversations at once, per round")
    parser.add_argument("--seconds", type=float, help="how long the model streams each answer")
    parser.add_argument("--chars", type=int, help=f"answer length ({CHUNK_CHARS} chars a chunk)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis-url", help="an existing Redis (else an embedded one)")
    parser.add_argument("--cluster", action="store_true", help="a 3-node Valkey cluster")
    parser.add_argument("--floor-streams", type=int, default=50, help="0: no floor")
    parser.add_argument("--profile", type=Path, help="cProfile each worker into this folder")
    args = parser.parse_args()
    full = args.full
    opts = Options(
        sizes=args.sizes or ([25, 50, 100, 200, 500] if full else [25, 100]),
        seconds=args.seconds or (10.0 if full else 2.0),
        chars=args.chars or (1600 if full else 320),
        workers=args.workers,
        redis_url=args.redis_url,
        cluster=args.cluster,
        floor_streams=args.floor_streams,
        profile=args.profile.resolve() if args.profile else None,
    )
    asyncio.run(bench(opts))


if __name__ == "__main__":
    main()
