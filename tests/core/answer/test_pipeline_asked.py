"""What comes with a question, through `Pipeline.answer` against real Redis and the local model:
the thread read once and kept, files each turn and never kept, the steps, the left-out note."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core import ingest
from core.answer.asked import Asked, Step
from core.answer.pipeline import (
    EMPTY_QUESTION,
    FILES_ONLY_QUESTION,
    LEFT_OUT_CONVERSATION,
    LEFT_OUT_THREAD,
    TOLD_LEFT_OUT,
    UNCOVERED,
    Pipeline,
)
from core.answer.prompt import NO_DOCUMENTS, THREAD_KEY
from core.knowledge.embeddings import LocalEmbeddings
from tests.conftest import MakeSettings
from tests.core.answer.test_attachments import File
from tests.core.answer.test_context import Reader
from tests.fakes.fake_openai import FakeOpenAI

S = "console:{asked}"
NOTHING = Asked()


async def ask(
    pipeline: Pipeline, question: str, asked: Asked = NOTHING, steps: list[Step] | None = None
) -> str:
    async def on_step(step: Step) -> None:
        assert steps is not None
        steps.append(step)

    chunks = pipeline.answer(
        S, question, asked=asked, on_step=on_step if steps is not None else None
    )
    return "".join([chunk async for chunk in chunks])


def system(fake_openai: FakeOpenAI, n: int) -> str:
    return str(fake_openai.requests[n]["messages"][0]["content"])


async def saved(pipeline: Pipeline) -> list[tuple[str, dict[str, Any]]]:
    return [(str(m.content), m.additional_kwargs) for m in await pipeline.messages(S)]


@pytest.fixture
async def documented(
    tmp_path: Path, make_settings: MakeSettings, request: pytest.FixtureRequest
) -> AsyncIterator[Pipeline]:
    """A pipeline over one ingested document (retrieval only when parametrised "no model")."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ops.md").write_text(
        "# Queues\n\n## Limits\n\nSet ZQ_BACKLOG_MAX to bound the queue.\n"
    )
    no_model = getattr(request, "param", "") == "no model"
    settings = make_settings(
        **({"openai_api_key": None, "openai_base_url": None} if no_model else {})
    )
    embeddings = LocalEmbeddings()
    await asyncio.to_thread(ingest, settings, [docs], embeddings, embeddings.name, progress=False)
    async with await Pipeline.create(settings) as pipeline:
        yield pipeline


async def test_the_thread_is_read_on_the_first_turn_and_given_on_every_turn(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    reader = Reader("the deploy broke", "did you roll back?")
    await ask(pipeline, "why?", Asked(thread=reader))
    await ask(pipeline, "and now?", Asked(thread=reader))
    assert reader.calls == [30]
    quoted = "<thread>\nU0 wrote:\nthe deploy broke\n\nU1 wrote:\ndid you roll back?\n</thread>"
    assert quoted in system(fake_openai, 0) and quoted in system(fake_openai, 1)
    kept = [["U0", "the deploy broke", False], ["U1", "did you roll back?", False]]
    assert await saved(pipeline) == [
        ("why?", {THREAD_KEY: kept}),
        ("You said: why?", {"uncovered": True}),
        ("and now?", {}),
        ("You said: and now?", {"uncovered": True}),
    ]


async def test_a_conversation_begun_before_the_thread_never_reads_it(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    reader = Reader("someone else's words")
    await ask(pipeline, "first")
    await ask(pipeline, "second", Asked(thread=reader))
    assert reader.calls == [] and "<thread>\n" not in system(fake_openai, 1)


async def test_an_unreadable_thread_costs_only_the_context(pipeline: Pipeline):
    steps: list[Step] = []
    answer = await ask(pipeline, "why?", Asked(thread=Reader(fail=TimeoutError())), steps)
    assert answer == "You said: why?"
    assert steps[1] == Step("thread", "Reading the thread", "complete", "0 earlier message(s)")
    assert await saved(pipeline) == [("why?", {}), ("You said: why?", {"uncovered": True})]


async def test_files_are_given_the_turn_they_come_with_and_never_saved(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    log = File("deploy.log", b"ERROR disk full")
    first = await ask(pipeline, "what failed?", Asked(files=[log]))
    second = await ask(pipeline, "and now?")
    assert first == "You said: what failed?\n\n_Sources: deploy.log (attached)_"
    assert second == "You said: and now?"
    assert "<files>\n[deploy.log]\nERROR disk full\n</files>" in system(fake_openai, 0)
    assert "<files>\n" not in system(fake_openai, 1)
    assert await saved(pipeline) == [
        ("what failed?", {}),
        ("You said: what failed?", {}),  # the file matched: covered
        ("and now?", {}),
        ("You said: and now?", {"uncovered": True}),
    ]


async def test_files_not_read_are_named_first(pipeline: Pipeline):
    files = [File("a.bin"), File("b.txt", b"fine"), File("c.txt", b"\x00")]
    answer = await ask(pipeline, "look", Asked(files=files))
    assert answer.startswith(
        "_Not read: a.bin: not a text file; c.txt: not a text file._\n\nYou said: look"
    )


async def test_files_without_a_question_are_answered(pipeline: Pipeline):
    answer = await ask(pipeline, "  ", Asked(files=[File("notes.txt", b"hello")]))
    assert answer != EMPTY_QUESTION and answer.startswith(f"You said: {FILES_ONLY_QUESTION}")
    assert (await saved(pipeline))[0] == (FILES_ONLY_QUESTION, {})


async def test_the_steps_come_in_order_with_what_they_found(documented: Pipeline):
    steps: list[Step] = []
    asked = Asked(thread=Reader("queues?", "they fill up"), files=[File("deploy.log")])
    answer = await ask(documented, "how do I bound the queue?", asked, steps)
    assert [(s.id, s.status, s.output) for s in steps] == [
        ("thread", "in_progress", ""),
        ("thread", "complete", "2 earlier message(s)"),
        ("files", "in_progress", ""),
        ("files", "complete", "deploy.log"),
        ("search", "in_progress", ""),
        ("search", "complete", "ops.md › Queues › Limits"),
    ]
    assert answer.endswith("\n\n_Sources: deploy.log (attached); ops.md › Queues › Limits_")
    steps.clear()
    await ask(documented, "and the default?", asked, steps)  # the thread is not read again
    assert [s.id for s in steps] == ["files", "files", "search", "search"]


@pytest.mark.parametrize("documented", ["no model"], indirect=True)
async def test_without_a_model_the_attached_file_is_shown_before_the_documents(
    documented: Pipeline,
):
    log = File("deploy.log", b"INFO started\n\nERROR the queue is full: ZQ_BACKLOG_MAX reached")
    answer = await ask(documented, "how do I bound the queue?", Asked(files=[log]))
    assert answer.startswith("**[1] deploy.log (attached)**\n\nINFO started")
    assert "**[2] ops.md › Queues › Limits**\n\nSet ZQ_BACKLOG_MAX" in answer


@pytest.mark.parametrize("cut", ["thread", "history"])
async def test_what_was_left_out_is_said_once_per_conversation(
    make_settings: MakeSettings, fake_openai: FakeOpenAI, cut: str
):
    if cut == "thread":  # the thread's middle does not fit: said with the first answer
        settings = make_settings(thread_context_tokens=100)
        asked = Asked(thread=Reader("what broke?", "word " * 200, "more " * 200))
        expected = [LEFT_OUT_THREAD, "", ""]
    else:  # the first answer is long: from the second turn on, the history is trimmed
        settings, asked = make_settings(history_max_tokens=100), NOTHING
        fake_openai.script("word " * 200)
        expected = ["", LEFT_OUT_CONVERSATION, ""]
    async with await Pipeline.create(settings) as pipeline:
        answers = [await ask(pipeline, f"question {n}", asked) for n in range(3)]
        told = [m.additional_kwargs.get(TOLD_LEFT_OUT, False) for m in await pipeline.messages(S)]
    notes = [next((n for n in expected if n and a.endswith(n)), "") for a in answers]
    assert notes == expected
    assert sum(a.count("were left out") for a in answers) == 1
    assert told[1::2] == [cut == "thread", True, True]  # flagged from the answer that said it


async def test_a_question_the_documents_miss_is_said_so_and_marked(
    documented: Pipeline, fake_openai: FakeOpenAI
):
    """Nothing matched: the model is told to say plainly that the documents do not cover it,
    the saved answer is marked `uncovered` (for the report of what the documents miss), and
    the probe counts it; a question they cover is not marked."""
    counted: list[bool] = []
    documented._probe.answered = lambda *, covered: counted.append(covered)  # type: ignore[method-assign]
    await ask(documented, "how do I bound the queue?")
    await ask(documented, "what is the capital of Mongolia?")
    assert NO_DOCUMENTS not in system(fake_openai, 0)
    assert "documents do not cover it" in NO_DOCUMENTS and NO_DOCUMENTS in system(fake_openai, 1)
    marks = [kwargs for _, kwargs in await saved(documented)][1::2]
    assert marks == [{}, {UNCOVERED: True}]
    assert counted == [True, False]
