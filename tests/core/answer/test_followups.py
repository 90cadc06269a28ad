"""A follow-up question is searched together with the question it follows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from core.answer.followups import is_follow_up, search_query
from core.answer.pipeline import Pipeline
from tests.conftest import MakeSettings


@pytest.mark.parametrize(
    "question",
    ["and how do I write one?", "And in Slack?", "what about tabs?", "what does that do?",
     "Also, can it retry?", "is there another way?"],
)  # fmt: skip
def test_follow_ups(question: str) -> None:
    assert is_follow_up(question)


@pytest.mark.parametrize(
    "question",
    ["How do I read a CSV file?", "How do I reset a conversation?", "where do I park",
     "How do I configure the bot so that it answers in the thread that it was mentioned in?"],
)  # fmt: skip
def test_questions_that_stand_alone(question: str) -> None:
    assert not is_follow_up(question)


def test_the_search_carries_the_questions_it_follows() -> None:
    history = [
        HumanMessage("How do I read a CSV file?"),
        AIMessage("(shown)"),
        HumanMessage("and how do I write one?"),
        AIMessage("(shown)"),
    ]
    assert search_query(history, "and with tabs?") == (
        "and with tabs?\nand how do I write one?\nHow do I read a CSV file?"
    )
    assert search_query(history, "Where is the office?") == "Where is the office?"
    assert search_query([], "and then?") == "and then?"


async def test_a_retrieval_only_follow_up_finds_what_it_refers_to(
    tmp_path: Path, make_settings: MakeSettings
) -> None:
    from core import ingest
    from core.knowledge.embeddings import LocalEmbeddings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "csv.md").write_text(
        "# CSV files\n\n## Reading\n\nTo read a CSV file, open it and pass it to "
        "csv.reader; each row is a list of strings.\n\n## Writing\n\nTo write rows to a CSV "
        "file, call csv.writer on an open file, then writerow for each row.\n"
    )
    (docs / "email.md").write_text(
        "# Email\n\n## Composing\n\nHow do I write one? Create an EmailMessage, set its "
        "subject, and write the body with set_content before you send it.\n"
    )
    settings = make_settings(openai_api_key=None, openai_base_url=None)  # retrieval only
    embeddings = LocalEmbeddings()
    await asyncio.to_thread(ingest, settings, [docs], embeddings, embeddings.name, progress=False)

    async def first_citation(pipeline: Pipeline, session: str, question: str) -> str:
        text = "".join([chunk async for chunk in pipeline.answer(session, question)])
        return text.split("**")[1]

    async with await Pipeline.create(settings) as pipeline:
        assert await first_citation(pipeline, "console:{alone}", "and how do I write one?") == (
            "[1] email.md › Email › Composing"
        )  # asked alone, it is about email: what it refers to is the earlier question
        assert (await first_citation(pipeline, "console:{f}", "How do I read a CSV file?")) == (
            "[1] csv.md › CSV files › Reading"
        )
        assert await first_citation(pipeline, "console:{f}", "and how do I write one?") == (
            "[1] csv.md › CSV files › Writing"
        )
