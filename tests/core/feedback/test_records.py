"""Answer records and votes in a real Redis (and on the cluster: keys in several slots)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.feedback.records import AnswerRecord, Used, answer_id
from core.feedback.votes import CHANGED, NEEDS_A_HUMAN, SAME, THANKS, UNKNOWN
from core.ops.metrics import Metrics
from tests.conftest import on_server_and_cluster

if TYPE_CHECKING:
    from core.answer.pipeline import Pipeline
    from tests.conftest import MakeSettings


def record(
    id: str, *, asker: str = "slack:U1", at: float | None = None, **kw: object
) -> AnswerRecord:
    fields: dict[str, object] = {
        "question": "How do I rotate an API key?",
        "answer": "Run `threadbot keys rotate`.",
        "covered": True,
        "passages": (Used("keys.md › Rotation", 0.81, "default"),),
        "bases": ("default",),
        "platform": "slack",
        "channel": "C1",
        "session": "slack:{T1:C1}:1.0",
    }
    fields.update(kw)
    return AnswerRecord(id, time.time() if at is None else at, asker=asker, **fields)  # type: ignore[arg-type]


def test_an_answer_id_is_the_same_for_every_delivery_of_its_event() -> None:
    assert answer_id("slack:Ev1") == answer_id("slack:Ev1") != answer_id("slack:Ev2")
    assert len(answer_id(None)) == 16 and answer_id(None) != answer_id(None)


@on_server_and_cluster
async def test_one_vote_per_person_per_answer_the_last_wins(pipeline: Pipeline) -> None:
    records = pipeline.records
    await records.keep(record("a" * 16))
    first = await records.vote("a" * 16, "slack:U2", "up")
    assert first is not None and first[1] is None
    again = await records.vote("a" * 16, "slack:U2", "down")
    assert again is not None and again[1] == "up"
    kept = await records.get("a" * 16)
    assert kept is not None and (kept.ups, kept.downs) == (0, 1)  # once, the last click
    await records.vote("a" * 16, "slack:U3", "down")  # another person: a second vote
    kept = await records.get("a" * 16)
    assert kept is not None and [v.voter for v in kept.votes] == ["slack:U2", "slack:U3"]
    assert kept.downs == 2 and kept.passages == (Used("keys.md › Rotation", 0.81, "default"),)


@on_server_and_cluster
async def test_a_reason_goes_with_the_persons_thumbs_down(pipeline: Pipeline) -> None:
    await pipeline.records.keep(record("b" * 16))
    await pipeline.records.vote("b" * 16, "discord:7", "up")
    await pipeline.records.give_reason("b" * 16, "discord:7", "  it cites the old CLI  ")
    kept = await pipeline.records.get("b" * 16)
    assert kept is not None
    assert [(v.vote, v.reason) for v in kept.votes] == [("down", "it cites the old CLI")]


async def test_no_record_no_vote(pipeline: Pipeline) -> None:
    assert await pipeline.records.vote("c" * 16, "slack:U1", "up") is None
    assert await pipeline.records.get("c" * 16) is None


@on_server_and_cluster
async def test_since_reads_the_window_and_skips_what_is_gone(pipeline: Pipeline) -> None:
    now = time.time()
    await pipeline.records.keep(record("d" * 16, at=now - 9 * 86400))
    await pipeline.records.keep(record("e" * 16, at=now - 2 * 86400))
    await pipeline.records.keep(record("f" * 16, at=now - 60))
    await pipeline.store.redis.delete(pipeline.records._answer("f" * 16))
    found = await pipeline.records.since(now - 7 * 86400)
    assert [r.id for r in found] == ["e" * 16]


@on_server_and_cluster
async def test_forget_removes_what_a_person_asked_and_their_votes(pipeline: Pipeline) -> None:
    records = pipeline.records
    await records.keep(record("1" * 16, asker="slack:U1"))
    await records.keep(record("2" * 16, asker="slack:U2"))
    await records.vote("1" * 16, "slack:U2", "up")  # U2's vote on U1's answer goes
    await records.vote("2" * 16, "slack:U1", "down")  # U1's vote on U2's answer goes too
    await records.vote("2" * 16, "slack:U3", "up")
    await records.vote("1" * 16, "slack:U1", "up")  # their vote on their own answer
    assert await records.forget("slack:U1") == 3  # one record, two votes
    assert await records.get("1" * 16) is None
    left = await records.get("2" * 16)
    assert left is not None and [v.voter for v in left.votes] == ["slack:U3"]
    assert [r.id for r in await records.since(0)] == ["2" * 16]
    # A bare id is looked up on every platform, as `conversations forget --user U3` does.
    await records.keep(record("3" * 16, asker="discord:U3"))
    assert await records.forget("U3") == 2  # U3's Slack vote and their Discord question
    assert [v.voter for v in (await records.get("2" * 16)).votes] == []  # type: ignore[union-attr]


async def test_records_expire_with_the_retention(make_settings: MakeSettings) -> None:
    from core.answer.pipeline import Pipeline

    settings = make_settings(records_retention_days=1)
    async with await Pipeline.create(settings) as pipeline:
        await pipeline.records.keep(record("9" * 16))
        await pipeline.records.vote("9" * 16, "slack:U5", "up")
        redis = pipeline.store.redis
        answer, votes = pipeline.records._answer("9" * 16), pipeline.records._votes("9" * 16)
        assert 0 < await redis.ttl(answer) <= 86400
        assert abs(await redis.pttl(votes) - await redis.pttl(answer)) < 2000  # with its answer
        # An index entry older than the retention is dropped by the next write.
        await pipeline.records.keep(record("8" * 16, at=time.time() - 2 * 86400))
        await pipeline.records.keep(record("7" * 16))
        assert "8" * 16 not in [r.id for r in await pipeline.records.since(0)]


async def test_votes_are_told_counted_and_call_a_person_once(make_settings: MakeSettings) -> None:
    from core.answer.pipeline import Pipeline

    metrics = Metrics()
    settings = make_settings(escalate_on=["down"])
    async with await Pipeline.create(settings, metrics=metrics) as pipeline:
        feedback = pipeline.feedback
        await pipeline.records.keep(record("5" * 16))
        calls: list[str] = []

        class Thread:
            async def call_a_human(self, text: str) -> bool:
                calls.append(text)
                return True

        said = []
        for voter, vote in [("U1", "up"), ("U1", "up"), ("U1", "down"), ("U2", "down")]:
            verdict = await feedback.vote("5" * 16, f"slack:{voter}", vote)  # type: ignore[arg-type]
            said.append(verdict.said)
            if verdict.needs_a_human:
                await feedback.call("down", Thread())
        assert said == [THANKS["up"], SAME["up"], CHANGED["down"], THANKS["down"]]
        assert calls == [NEEDS_A_HUMAN["down"]]  # the answer's first 👎 only
        assert (await feedback.vote("0" * 16, "slack:U1", "up")).said == UNKNOWN
        exposed = metrics.exposition().decode()
        assert 'threadbot_feedback_total{outcome="same",vote="up"} 1.0' in exposed
        assert 'threadbot_needs_a_human_total{why="down"} 1.0' in exposed


async def test_no_call_for_a_person_unless_asked_for(make_settings: MakeSettings) -> None:
    from core.answer.pipeline import Pipeline

    async with await Pipeline.create(make_settings(escalate_on=[])) as pipeline:

        class Thread:
            async def call_a_human(self, text: str) -> bool:
                raise AssertionError("nobody asked for a person")

        await pipeline.feedback.call("down", Thread())
        await pipeline.feedback.call("uncovered", Thread())


def test_records_round_trip_through_json() -> None:
    kept = record("6" * 16, covered=False, passages=())
    assert AnswerRecord.from_json(kept.to_json()) == kept
