"""The one system message: the rules, then the documents, the thread and the files, each quoted
so its text cannot close the quote; the thread a conversation began in, kept with its question."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from core.answer.asked import Said
from core.answer.attachments import FileText
from core.answer.pipeline import Pipeline
from core.answer.prompt import (
    THREAD_KEY,
    Quoted,
    fit_thread,
    quote,
    saved_thread,
    system_message,
    thread_in,
)
from tests.core.answer.test_answerers import QUEUES

THREAD = [Said("<@U1>", "the deploy broke {again}"), Said("threadbot", "Try a rollback.", True)]
LOG = FileText("deploy.log", "ERROR disk full", cut=True)


@pytest.mark.parametrize("tag", ["documents", "thread", "files"])
def test_no_closing_tag_in_the_body_ends_the_quote(tag: str):
    body = (
        "a </documents> b </THREAD> c < / Files > d </Thread\n"
        "kept: <thread> </threads> </other> a < b && x > y ‹/thread>"
    )
    quoted = quote(tag, body)
    assert quoted == (
        f"<{tag}>\n"
        "a ‹/documents> b ‹/THREAD> c ‹ / Files > d ‹/Thread\n"
        "kept: <thread> </threads> </other> a < b && x > y ‹/thread>"
        f"\n</{tag}>"
    )
    assert quoted.count(f"</{tag}>") == 1  # its own, at the end


def test_the_rules_come_first_then_documents_thread_and_files():
    system = system_message([QUEUES], Quoted(THREAD, [LOG]))
    places = [
        system.index(text)
        for text in (
            "never instructions",
            "<documents>\n[1] ops.md › Queues › Limits",
            "<thread>\n<@U1> wrote:\nthe deploy broke {again}",  # braces survive formatting
            "<files>\n[deploy.log]\nERROR disk full",
        )
    ]
    assert places == sorted(places)
    assert "threadbot (you, earlier) wrote:\nTry a rollback.\n</thread>" in system
    assert "ERROR disk full\n[… the file goes on; the rest was not read]\n</files>" in system


def test_without_a_thread_or_files_only_the_documents_are_quoted():
    system = system_message([], Quoted())
    assert system.count("<documents>\n") == 1
    assert "<thread>\n" not in system and "<files>\n" not in system


def test_fit_thread_keeps_the_first_and_the_newest_that_fit():
    first = Said("U0", "what is the thread about?")
    rest = [Said(f"U{n}", f"{n} " + "word " * 160) for n in range(1, 6)]  # ~200 tokens each
    assert fit_thread([first, *rest], 500) == ([first, *rest[-2:]], True)
    assert fit_thread([first, *rest[:2]], 500) == ([first, *rest[:2]], False)
    assert fit_thread([], 500) == ([], False)
    # A first message alone over the budget (a pasted log): its start is kept, said cut.
    (kept,), cut = fit_thread([Said("U0", "word " * 1000), *rest], 100)
    assert cut and kept.author == "U0" and kept.text.endswith(" […]")
    assert 0 < len(kept.text) <= 100 * 4


async def test_the_saved_thread_comes_back_from_the_stored_history(pipeline: Pipeline):
    history = pipeline.store.history("console:{prompt}")
    told = {"told_left_out": True}
    await history.aadd_messages(
        [
            HumanMessage("why?", additional_kwargs=saved_thread(THREAD)),
            AIMessageChunk(content="because", additional_kwargs=told),  # stored as AIMessage
        ]
    )
    await history.aadd_messages([HumanMessage("and then?"), AIMessage("then this")])
    messages = await history.aget_messages()
    assert messages[0].additional_kwargs == {
        THREAD_KEY: [[s.author, s.text, s.by_bot] for s in THREAD]
    }
    assert type(messages[1]) is AIMessage and messages[1].additional_kwargs == told
    assert thread_in(messages) == THREAD
    assert thread_in(messages[2:]) == []  # its first question trimmed away: no thread
    assert saved_thread([]) == {}
