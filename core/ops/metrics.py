"""Prometheus metrics of one bot: how turns end, how fast text shows, platform calls, Redis.

One `Metrics` per bot, with its own registry (tests run several bots in one process). It learns
everything from outside the code it measures, handed in by the composition root: the turn
runner's outcomes (a listener), the answer flow's probe, an aiohttp trace on the platform's HTTP
client, and the Redis client's command observer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from redis.exceptions import NoScriptError, RedisError

from core.answer.probe import AnswerProbe
from core.knowledge.retrieval import live_version

if TYPE_CHECKING:
    from core.turn.runner import TurnRunner
    from core.turn.types import Outcome

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds from an event to its first visible text, and other user-facing waits.
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PASSAGE_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 32)
_OUTCOMES = {"answered": "complete", "failed": "failed", "gone": "gone", "cancelled": "cancelled"}
# A route segment kept as it is: a word ("messages", "@original"). Anything else (ids,
# interaction tokens, emoji) becomes {id}: labels stay few and never carry a secret.
_ROUTE_WORD = re.compile(r"^[a-z_@-]+$")
_SLACK_METHOD = re.compile(r"^[a-z]+(\.[a-zA-Z]+)+$")  # chat.postMessage
_API_PREFIX = re.compile(r"^.*?/api/(v\d+/)?")


def route_of(method: str, path: str) -> str:
    """The label of one platform request: Slack's method name, or Discord's route template."""
    route = _API_PREFIX.sub("", path).strip("/")
    if _SLACK_METHOD.match(route):
        return route
    parts = [p if _ROUTE_WORD.match(p) else "{id}" for p in route.split("/")]
    return f"{method} /{'/'.join(parts)}"


class Metrics(AnswerProbe):
    """Every threadbot metric; `watch(runner)` connects it to a bot, `exposition()` renders it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._turn_metrics(self.registry)
        self._platform_metrics(self.registry)
        self._answer_metrics(self.registry)
        self._redis_metrics(self.registry)
        self._gauges(self.registry)

    def _turn_metrics(self, r: CollectorRegistry) -> None:
        """How turns end, and how long their replies take to show."""
        self.turns = Counter(
            "threadbot_turns",
            "Turns finished, by status: answered, failed, gone, cancelled, reset, "
            "duplicate (an event delivered again, deduplicated), ignored.",
            ["platform", "status"],
            registry=r,
        )
        self.answers = Counter(
            "threadbot_answers",
            "Answers by outcome (complete, failed, gone, cancelled); kind names the failure.",
            ["platform", "outcome", "kind"],
            registry=r,
        )
        self.first_visible = Histogram(
            "threadbot_first_visible_seconds",
            "From the event reaching the bot to the answer's first text shown in the chat.",
            ["platform"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.final_after_stream = Histogram(
            "threadbot_final_after_stream_seconds",
            "From the model's last token to the final text shown in the chat.",
            ["platform"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.reply_rate_limited = Counter(
            "threadbot_reply_rate_limited",
            "Rate limits (429) the streaming editor waited out while showing answers.",
            ["platform"],
            registry=r,
        )

    def _platform_metrics(self, r: CollectorRegistry) -> None:
        self.platform_requests = Counter(
            "threadbot_platform_requests",
            "HTTP requests to the chat platform's API by method and HTTP status (429: limited).",
            ["platform", "method", "status"],
            registry=r,
        )

    def _answer_metrics(self, r: CollectorRegistry) -> None:
        """The model's stream and the document search."""
        self.model_first_token = Histogram(
            "threadbot_model_first_token_seconds",
            "From the model request to its first streamed chunk.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.model_chunks = Counter(
            "threadbot_model_chunks",
            "Chunks the model streamed (OpenAI-compatible servers send about one token each).",
            registry=r,
        )
        self.retrieval_seconds = Histogram(
            "threadbot_retrieval_seconds",
            "Document search time per question (embedding and index search).",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.retrieval_passages = Histogram(
            "threadbot_retrieval_passages",
            "Passages a search returned (after the RETRIEVAL_MIN_SCORE cutoff).",
            buckets=PASSAGE_BUCKETS,
            registry=r,
        )
        self.questions = Counter(
            "threadbot_questions",
            "Questions answered, by whether a passage or a file matched them (covered=no: "
            "what the documents miss).",
            ["covered"],
            registry=r,
        )
        self.votes = Counter(
            "threadbot_feedback",
            "Clicks on an answer's 👍/👎 by vote and outcome: new, changed, same, reason (a "
            "👎's reason given), unknown (the answer's record is gone), failed (not kept).",
            ["vote", "outcome"],
            registry=r,
        )
        self.needs_a_human = Counter(
            "threadbot_needs_a_human",
            "Calls for a person posted in a thread, by why: down (a 👎), uncovered.",
            ["why"],
            registry=r,
        )

    def _redis_metrics(self, r: CollectorRegistry) -> None:
        self.redis_seconds = Histogram(
            "threadbot_redis_command_seconds",
            "Redis round trips by command (MULTI: a transaction, PIPELINE: a batch).",
            ["command"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "threadbot_redis_errors",
            "Redis commands that failed, by command and error class.",
            ["command", "error"],
            registry=r,
        )

    def _gauges(self, r: CollectorRegistry) -> None:
        """What the bot holds right now (read when scraped; `watch` connects them)."""
        self.in_flight = Gauge(
            "threadbot_answers_in_flight", "Turns being answered now.", registry=r
        )
        self.waiting = Gauge(
            "threadbot_questions_waiting",
            "Questions waiting for an earlier turn of their conversation to finish.",
            registry=r,
        )
        self.waiting_for_slot = Gauge(
            "threadbot_answers_waiting_for_a_slot",
            "Answers waiting for one of MAX_ANSWERS_AT_ONCE (their placeholder shown).",
            registry=r,
        )
        self.draining = Gauge(
            "threadbot_draining", "1 while the bot stops: no new work is taken.", registry=r
        )
        self.index_passages = Gauge(
            "threadbot_index_passages", "Passages in the document index as loaded.", registry=r
        )
        self.index_version = Gauge(
            "threadbot_index_version_timestamp_seconds",
            "When the live index version was written (0: nothing ingested).",
            registry=r,
        )

    def watch(self, runner: TurnRunner, index_dir: Path) -> None:
        """Count `runner`'s turns from now on. Its pipeline was built with this object as its
        probe and its Redis client's observer (`Pipeline.create(..., metrics=...)`)."""
        runner.add_listener(self.observe)
        pipeline = runner.pipeline
        self.in_flight.set_function(lambda: runner.in_flight)
        self.waiting.set_function(lambda: runner.waiting)
        self.waiting_for_slot.set_function(lambda: pipeline.waiting_for_slot)
        self.draining.set_function(lambda: int(runner.draining))
        self.index_passages.set_function(lambda: pipeline.documents)
        self.index_version.set_function(lambda: _version_time(index_dir))

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric, as /metrics serves it."""
        return generate_latest(self.registry)

    # -- the turn runner's outcomes ------------------------------------------------------------

    def observe(self, outcome: Outcome) -> None:
        """A turn ended: count it, and time its reply."""
        platform = outcome.turn.platform
        self.turns.labels(platform, outcome.status).inc()
        verdict = _OUTCOMES.get(outcome.status)
        if outcome.turn.action == "answer" and verdict is not None:
            kind = type(outcome.error).__name__ if outcome.error is not None else ""
            if verdict == "failed" and not kind:
                kind = "unknown"
            self.answers.labels(platform, verdict, kind).inc()
        reply = outcome.reply
        if reply is None:
            return
        if reply.first_text_at is not None:
            self.first_visible.labels(platform).observe(reply.first_text_at - outcome.received_at)
        if reply.final_at is not None and reply.stream_ended_at is not None:
            waited = reply.final_at - reply.stream_ended_at
            self.final_after_stream.labels(platform).observe(max(waited, 0.0))
        if reply.rate_limited:
            self.reply_rate_limited.labels(platform).inc(reply.rate_limited)

    # -- the answer flow's probe ---------------------------------------------------------------

    def retrieved(self, seconds: float, passages: int) -> None:
        self.retrieval_seconds.observe(seconds)
        self.retrieval_passages.observe(passages)

    def answered(self, *, covered: bool) -> None:
        self.questions.labels("yes" if covered else "no").inc()

    def voted(self, vote: str, outcome: str) -> None:
        self.votes.labels(vote, outcome).inc()

    def called_a_human(self, why: str) -> None:
        self.needs_a_human.labels(why).inc()

    def streamed(self, seconds: float, *, first: bool) -> None:
        self.model_chunks.inc()
        if first:
            self.model_first_token.observe(seconds)

    # -- platform HTTP calls -------------------------------------------------------------------

    def http_trace(self, platform: str) -> aiohttp.TraceConfig:
        """An aiohttp trace counting every request of a platform client (Slack's Web API)."""
        trace = aiohttp.TraceConfig()
        self.count_requests(trace, platform)
        return trace

    def count_requests(self, trace: aiohttp.TraceConfig, platform: str) -> None:
        """Count requests on an existing trace, ahead of its own hooks (which may raise)."""

        async def ended(
            session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
        ) -> None:
            status = str(params.response.status)
            route = route_of(params.method, params.url.path)
            self.platform_requests.labels(platform, route, status).inc()

        async def failed(
            session: aiohttp.ClientSession,
            context: Any,
            params: aiohttp.TraceRequestExceptionParams,
        ) -> None:
            route = route_of(params.method, params.url.path)
            self.platform_requests.labels(platform, route, "error").inc()

        trace.on_request_end.insert(0, ended)
        trace.on_request_exception.insert(0, failed)

    # -- Redis ---------------------------------------------------------------------------------

    async def timed(self, command: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """The Redis client's observer (`connect(..., observer=metrics)`): time every command
        and count every error."""
        started = time.perf_counter()
        try:
            return await call()
        except NoScriptError:
            raise  # a script's first run on a server: redis-py loads it and runs it again
        except RedisError as exc:
            self.redis_errors.labels(command, type(exc).__name__).inc()
            raise
        finally:
            self.redis_seconds.labels(command).observe(time.perf_counter() - started)


def _version_time(index_dir: Path) -> float:
    """The live version's write time, from its name (`v-{time_ns}`); 0 before any ingest."""
    version = live_version(index_dir)
    if version is None or not version.startswith("v-"):
        return 0.0
    try:
        return int(version[2:]) / 1e9
    except ValueError:
        return 0.0
