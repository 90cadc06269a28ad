"""The bot's Prometheus metrics: Redis commands timed through the real client, turns counted
from their outcomes, platform routes labelled, and the text /metrics serves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from core.errors import ModelFailed
from core.ops.metrics import Metrics, route_of
from core.reply.editor import Reply
from core.store.redis_client import connect
from core.turn.types import Outcome, Turn
from tests.conftest import MakeSettings


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value, 0 when it was never recorded."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


@dataclass
class Observed:
    metrics: Metrics
    client: Redis
    key: str  # a key of this test's own, deleted after it


@pytest.fixture
async def observed(make_settings: MakeSettings, redis_url: str) -> AsyncIterator[Observed]:
    """A real client on the test server whose every command goes through a fresh `Metrics`."""
    settings = make_settings()
    metrics = Metrics()
    client = connect(settings, redis_url, observer=metrics)
    key = f"{settings.redis_namespace}metrics:{uuid.uuid4().hex}"
    try:
        yield Observed(metrics, client, key)
    finally:
        await client.delete(key)
        await client.aclose()


async def test_a_successful_command_is_timed_and_no_error_counted(observed: Observed):
    metrics, client, key = observed.metrics, observed.client, observed.key
    await client.set(key, b"1")
    assert await client.get(key) == b"1"
    assert value(metrics, "threadbot_redis_command_seconds_count", command="SET") == 1
    assert value(metrics, "threadbot_redis_command_seconds_count", command="GET") == 1
    assert value(metrics, "threadbot_redis_command_seconds_sum", command="GET") > 0
    errors = [
        s
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "threadbot_redis_errors_total"
    ]
    assert errors == []


async def test_a_failing_command_is_counted_by_error_class_and_still_timed(observed: Observed):
    metrics, client, key = observed.metrics, observed.client, observed.key
    await client.set(key, b"not a number")
    with pytest.raises(ResponseError):
        await client.incr(key)  # redis-py sends INCRBY
    assert (
        value(metrics, "threadbot_redis_errors_total", command="INCRBY", error="ResponseError") == 1
    )
    assert value(metrics, "threadbot_redis_errors_total", command="SET", error="ResponseError") == 0
    assert value(metrics, "threadbot_redis_command_seconds_count", command="INCRBY") == 1


async def test_a_transaction_is_timed_as_one_multi(observed: Observed):
    metrics, client, key = observed.metrics, observed.client, observed.key
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(key, b"1")
        pipe.incr(key)
        assert await pipe.execute() == [True, 2]
    assert value(metrics, "threadbot_redis_command_seconds_count", command="MULTI") == 1
    assert value(metrics, "threadbot_redis_command_seconds_count", command="INCRBY") == 0


def outcome(status: str, **fields: object) -> Outcome:
    turn = Turn(platform="slack", session_id="s1", question="hi")
    return Outcome(turn=turn, received_at=10.0, status=status, **fields)  # type: ignore[arg-type]


def test_an_answered_turn_counts_a_complete_answer_and_times_its_reply():
    metrics = Metrics()
    reply: Reply[int] = Reply(first_text_at=10.5, stream_ended_at=12.0, final_at=12.25)
    reply.rate_limited = 2
    metrics.observe(outcome("answered", reply=reply))
    assert value(metrics, "threadbot_turns_total", platform="slack", status="answered") == 1
    assert (
        value(metrics, "threadbot_answers_total", platform="slack", outcome="complete", kind="")
        == 1
    )
    assert value(metrics, "threadbot_first_visible_seconds_sum", platform="slack") == 0.5
    assert value(metrics, "threadbot_final_after_stream_seconds_sum", platform="slack") == 0.25
    assert value(metrics, "threadbot_reply_rate_limited_total", platform="slack") == 2


def test_a_failed_turn_counts_its_error_class_or_unknown():
    metrics = Metrics()
    metrics.observe(outcome("failed", error=ModelFailed("cut")))
    metrics.observe(outcome("failed"))
    labels = {"platform": "slack", "outcome": "failed"}
    assert value(metrics, "threadbot_answers_total", **labels, kind="ModelFailed") == 1
    assert value(metrics, "threadbot_answers_total", **labels, kind="unknown") == 1
    assert value(metrics, "threadbot_turns_total", platform="slack", status="failed") == 2


@pytest.mark.parametrize("status", ["duplicate", "ignored", "reset"])
def test_a_turn_that_is_no_answer_counts_as_a_turn_only(status: str):
    metrics = Metrics()
    metrics.observe(outcome(status))
    assert value(metrics, "threadbot_turns_total", platform="slack", status=status) == 1
    answers = [
        s
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "threadbot_answers_total"
    ]
    assert answers == []


def test_a_reset_action_is_no_answer_even_when_answered():
    metrics = Metrics()
    turn = Turn(platform="discord", session_id="s", action="reset")
    metrics.observe(Outcome(turn=turn, received_at=0.0, status="answered"))
    assert value(metrics, "threadbot_turns_total", platform="discord", status="answered") == 1
    assert (
        value(metrics, "threadbot_answers_total", platform="discord", outcome="complete", kind="")
        == 0
    )


def test_a_final_text_shown_before_the_stream_ended_counts_zero_wait():
    metrics = Metrics()
    reply: Reply[int] = Reply(first_text_at=11.0, stream_ended_at=12.0, final_at=11.5)
    metrics.observe(outcome("answered", reply=reply))
    assert value(metrics, "threadbot_final_after_stream_seconds_sum", platform="slack") == 0
    assert value(metrics, "threadbot_final_after_stream_seconds_count", platform="slack") == 1


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("POST", "/api/chat.postMessage", "chat.postMessage"),
        ("POST", "/api/chat.update", "chat.update"),
        (
            "PATCH",
            "/api/v10/channels/1234567890/messages/9876543210",
            "PATCH /channels/{id}/messages/{id}",
        ),
        (
            "PATCH",
            "/api/v10/webhooks/111/aToKeN-with.Secret/messages/@original",
            "PATCH /webhooks/{id}/{id}/messages/@original",
        ),
        (
            "PUT",
            "/api/v10/channels/1/messages/2/reactions/%F0%9F%91%8D/@me",
            "PUT /channels/{id}/messages/{id}/reactions/{id}/@me",
        ),
    ],
)
def test_route_of_labels_a_request_without_ids_or_tokens(method: str, path: str, label: str):
    assert route_of(method, path) == label


def test_the_exposition_has_every_recorded_metric_line():
    metrics = Metrics()
    metrics.observe(outcome("answered"))
    metrics.streamed(0.2, first=True)
    metrics.streamed(0.01, first=False)
    metrics.retrieved(0.003, 4)
    metrics.answered(covered=False)
    text = metrics.exposition().decode()
    assert 'threadbot_questions_total{covered="no"} 1.0' in text
    assert 'threadbot_turns_total{platform="slack",status="answered"} 1.0' in text
    assert "threadbot_model_chunks_total 2.0" in text
    assert "threadbot_model_first_token_seconds_count 1.0" in text
    assert "threadbot_retrieval_passages_sum 4.0" in text
    assert "# TYPE threadbot_redis_command_seconds histogram" in text
    assert "# HELP threadbot_draining" in text
