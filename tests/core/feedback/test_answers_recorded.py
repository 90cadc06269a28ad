"""Each answered question is recorded through the real pipeline and runner, and the sink is
asked for 👍/👎 only under a final, recorded answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.answer.pipeline import Pipeline
from core.feedback.records import Answered
from core.feedback.votes import NEEDS_A_HUMAN
from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.ingest import ingest
from core.turn.runner import TurnRunner
from core.turn.types import Turn
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.recording_sink import RecordingSink

SESSION = "test:{T:C}:1.0"


class RatedSink(RecordingSink):
    """A recording sink that takes feedback buttons and calls for a person."""

    def __init__(self) -> None:
        super().__init__()
        self.rated: list[Answered] = []
        self.buttons: list[tuple[Any, str, str]] = []
        self.calls_for_a_human: list[str] = []

    def rating(self, answered: Answered) -> None:
        self.rated.append(answered)

    async def ask_feedback(self, handle: Any, text: str) -> None:
        self.buttons.append((handle, text, self.rated[-1].id))

    async def call_a_human(self, text: str) -> bool:
        self.calls_for_a_human.append(text)
        return True


def turn(question: str, event: str) -> Turn:
    return Turn("test", SESSION, question, user="U1", event_key=event, workspace="T", channel="C")


async def test_a_covered_answer_is_recorded_with_its_passages_and_gets_buttons(
    tmp_path: Path, make_settings: MakeSettings
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keys.md").write_text(
        "# Rotation\n\nRotate an API key with `threadbot keys rotate`; the old key works an hour."
    )
    settings = make_settings(escalate_on=["down", "uncovered"])
    embeddings = LocalEmbeddings()
    ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    async with await Pipeline.create(settings) as pipeline:
        async with TurnRunner(pipeline, interval_s=0, grace_s=0) as runner:
            sink = RatedSink()
            outcome = await runner.run(turn("How do I rotate an API key?", "test:E1"), sink)
        assert outcome.status == "answered" and outcome.answer_id
        record = await pipeline.records.get(outcome.answer_id)
    assert record is not None and record.covered
    assert record.question == "How do I rotate an API key?" and record.asker == "test:U1"
    assert [p.citation for p in record.passages] == ["keys.md › Rotation"]
    assert record.passages[0].base == "default" and record.bases == ("default",)
    assert (record.platform, record.workspace, record.channel) == ("test", "T", "C")
    assert sink.buttons == [(0, sink.messages[0], outcome.answer_id)]  # under the last message
    assert sink.calls_for_a_human == []  # covered: nobody is called


async def test_an_uncovered_question_is_recorded_so_and_calls_a_person(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(escalate_on=["uncovered"])  # nothing ingested: nothing covers it
    async with await Pipeline.create(settings) as pipeline:
        async with TurnRunner(pipeline, interval_s=0, grace_s=0) as runner:
            sink = RatedSink()
            outcome = await runner.run(turn("What is for lunch?", "test:E2"), sink)
        record = await pipeline.records.get(outcome.answer_id)
    assert record is not None and not record.covered and record.passages == ()
    assert sink.calls_for_a_human == [NEEDS_A_HUMAN["uncovered"]]


async def test_a_failed_answer_gets_no_buttons_and_no_record(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("The first part", chunk_size=5, fail_after_chunks=2)
    async with await Pipeline.create(make_settings()) as pipeline:
        async with TurnRunner(pipeline, interval_s=0, grace_s=0) as runner:
            sink = RatedSink()
            outcome = await runner.run(turn("Will this fail?", "test:E3"), sink)
        assert outcome.status == "failed" and outcome.answer_id == ""
        assert sink.buttons == [] and await pipeline.records.since(0) == []


async def test_without_feedback_no_buttons_but_the_question_is_recorded(
    make_settings: MakeSettings,
) -> None:
    async with await Pipeline.create(make_settings(feedback=False)) as pipeline:
        async with TurnRunner(pipeline, interval_s=0, grace_s=0) as runner:
            sink = RatedSink()
            outcome = await runner.run(turn("Anything?", "test:E4"), sink)
        assert sink.rated == [] and sink.buttons == []
        assert [r.id for r in await pipeline.records.since(0)] == [outcome.answer_id]
