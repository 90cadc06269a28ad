"""How an answer is written: the passages themselves without a model, else the model's stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from core.answer.answerers import (
    NOTHING_FOUND_NOTE,
    RETRIEVAL_ONLY_NOTE,
    ModelAnswerer,
    RetrievalOnlyAnswerer,
    build_answerer,
    sources_footer,
)
from core.answer.prompt import NO_DOCUMENTS, fit_history, format_context
from core.errors import ModelFailed
from core.knowledge.retrieval import Chunk, Passage
from tests.conftest import IsolatedSettings, MakeSettings
from tests.fakes.fake_openai import FakeOpenAI

QUEUES = Passage(Chunk("Set ZQ_BACKLOG_MAX to bound the queue.", "ops.md", "Queues › Limits"), 0.9)
LUNCH = Passage(Chunk("Soup from noon.", "lunch.md"), 0.5)
QUEUES_AGAIN = Passage(Chunk("Jobs past it are refused.", "ops.md", "Queues › Limits"), 0.4)
HISTORY: list[BaseMessage] = [HumanMessage("earlier question"), AIMessage("earlier answer")]


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [piece async for piece in stream]


async def answer(
    answerer: RetrievalOnlyAnswerer | ModelAnswerer,
    passages: Sequence[Passage],
    history: Sequence[BaseMessage] = (),
    question: str = "how do I bound the queue?",
) -> str:
    return "".join(await collect(answerer.stream(history, question, passages)))


# -- retrieval only ---------------------------------------------------------------------------


async def test_retrieval_only_shows_each_passage_under_its_citation() -> None:
    text = await answer(RetrievalOnlyAnswerer(), [QUEUES, LUNCH], history=HISTORY)
    assert text == (
        "**[1] ops.md › Queues › Limits**\n\nSet ZQ_BACKLOG_MAX to bound the queue."
        "\n\n**[2] lunch.md**\n\nSoup from noon."
    )


async def test_retrieval_only_streams_one_block_a_passage() -> None:
    pieces = await collect(RetrievalOnlyAnswerer().stream(HISTORY, "q", [QUEUES, LUNCH]))
    assert len(pieces) == 2
    assert pieces[1].startswith("\n\n**[2] lunch.md**")


async def test_retrieval_only_says_what_it_is_in_a_new_conversation() -> None:
    text = await answer(RetrievalOnlyAnswerer(), [QUEUES])
    assert text.endswith(f"\n\n{RETRIEVAL_ONLY_NOTE}")
    assert "OPENAI_API_KEY" in RETRIEVAL_ONLY_NOTE


async def test_retrieval_only_says_it_once_a_conversation() -> None:
    text = await answer(RetrievalOnlyAnswerer(), [QUEUES], history=HISTORY)
    assert RETRIEVAL_ONLY_NOTE not in text
    assert "No language model" not in text


async def test_retrieval_only_with_nothing_found() -> None:
    assert await answer(RetrievalOnlyAnswerer(), [], history=HISTORY) == (
        "I found nothing about that in the documents."
    )
    assert await answer(RetrievalOnlyAnswerer(), []) == (
        f"I found nothing about that in the documents.\n\n{NOTHING_FOUND_NOTE}"
    )


async def test_retrieval_only_escapes_control_characters_in_a_citation() -> None:
    evil = Passage(Chunk("text", "evil\x1b[31m.md", "line\nbreak"), 0.5)
    text = await answer(RetrievalOnlyAnswerer(), [evil], history=HISTORY)
    assert "\x1b" not in text
    assert text.startswith("**[1] evil\\x1b[31m.md › line\\nbreak**")


def test_retrieval_only_remembers_what_it_showed_not_the_passages() -> None:
    answerer = RetrievalOnlyAnswerer()
    assert answerer.cites_inline
    shown = answerer.remembered("the long passages…", [QUEUES, QUEUES_AGAIN, LUNCH])
    assert shown == (
        "(Retrieval-only answer: showed the passages ops.md › Queues › Limits; lunch.md.)"
    )
    assert answerer.remembered("I found nothing…", []) == (
        "(Retrieval-only answer: nothing in the documents matched.)"
    )


# -- what the model is given -------------------------------------------------------------------


def test_context_numbers_each_passage_with_its_citation() -> None:
    assert format_context([QUEUES, LUNCH]) == (
        "[1] ops.md › Queues › Limits\nSet ZQ_BACKLOG_MAX to bound the queue."
        "\n\n[2] lunch.md\nSoup from noon."
    )
    assert format_context([]) == NO_DOCUMENTS


def test_sources_footer_names_each_citation_once() -> None:
    assert sources_footer([QUEUES, LUNCH, QUEUES_AGAIN]) == (
        "\n\n_Sources: ops.md › Queues › Limits; lunch.md_"
    )
    assert sources_footer([]) == ""


def test_build_answerer_needs_a_key_or_a_server_for_a_model() -> None:
    assert isinstance(build_answerer(IsolatedSettings()), RetrievalOnlyAnswerer)
    assert isinstance(build_answerer(IsolatedSettings(openai_api_key="sk-x")), ModelAnswerer)
    local = IsolatedSettings(openai_base_url="http://127.0.0.1:9/v1")
    assert isinstance(build_answerer(local), ModelAnswerer)


# -- the chat model --------------------------------------------------------------------------


async def test_the_model_answer_streams_in_pieces(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("Set ZQ_BACKLOG_MAX, then restart the worker.", chunk_size=6)
    answerer = ModelAnswerer(make_settings())
    pieces = await collect(answerer.stream(HISTORY, "how do I bound the queue?", [QUEUES]))
    assert "".join(pieces) == "Set ZQ_BACKLOG_MAX, then restart the worker."
    assert len(pieces) > 1
    assert not answerer.cites_inline
    assert answerer.remembered("the answer", [QUEUES]) == "the answer"


async def test_the_model_is_sent_the_documents_the_history_and_the_question(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    answerer = ModelAnswerer(make_settings(chat_model="my-model", chat_temperature=0.0))
    await answer(answerer, [QUEUES, LUNCH], history=HISTORY, question="and lunch?")
    (request,) = fake_openai.requests
    assert request["model"] == "my-model"
    assert request["stream"] is True
    assert request["temperature"] == 0.0
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    system = request["messages"][0]["content"]
    assert format_context([QUEUES, LUNCH]) in system
    assert [m["content"] for m in request["messages"][1:]] == [
        "earlier question",
        "earlier answer",
        "and lunch?",
    ]


async def test_the_model_is_told_when_no_document_matched(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    await answer(ModelAnswerer(make_settings()), [])
    assert NO_DOCUMENTS in fake_openai.requests[0]["messages"][0]["content"]


def test_only_the_latest_history_that_fits_is_kept() -> None:
    words = "word " * 150  # about 190 tokens a message by the approximate count
    history: list[BaseMessage] = []
    for n in range(6):
        history += [HumanMessage(f"question {n} {words}"), AIMessage(f"answer {n} {words}")]
    kept, left_out = fit_history(history, 500)
    assert left_out and 0 < len(kept) < len(history)
    assert kept[0].type == "human"  # never starts with an answer cut from its question
    assert kept[-1].text.startswith("answer 5 ")  # the newest is kept
    assert fit_history(history[:2], 500) == (history[:2], False)


async def test_a_local_server_needs_no_key(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("fine")
    assert await answer(ModelAnswerer(make_settings(openai_api_key=None)), []) == "fine"


async def test_a_stream_ended_without_a_finish_reason_fails(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    """Cut short by a proxy or a crashed server: the answer is not known to be whole."""
    fake_openai.script(
        "the first part, then", chunk_size=5, fail_after_chunks=2, fail_mode="truncate"
    )
    pieces: list[str] = []
    with pytest.raises(ModelFailed, match="without a finish reason"):
        async for piece in ModelAnswerer(make_settings()).stream([], "q", []):
            pieces.append(piece)
    assert "".join(pieces) == "the first "  # what came before the cut was streamed


@pytest.mark.parametrize("fail_mode", ["error_event", "disconnect"])
async def test_a_stream_broken_mid_answer_fails(
    make_settings: MakeSettings, fake_openai: FakeOpenAI, fail_mode: str
) -> None:
    fake_openai.script("never all of it", chunk_size=4, fail_after_chunks=1, fail_mode=fail_mode)
    with pytest.raises(ModelFailed):
        await answer(ModelAnswerer(make_settings()), [])


async def test_a_rate_limit_tells_the_user_to_wait(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("", status=429)
    with pytest.raises(ModelFailed) as failed:
        await answer(ModelAnswerer(make_settings()), [])
    assert "rate limited" in failed.value.user_message


async def test_a_server_error_is_a_model_failure(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("", status=500)
    with pytest.raises(ModelFailed) as failed:
        await answer(ModelAnswerer(make_settings()), [])
    assert failed.value.user_message == ModelFailed.user_message


async def test_a_silent_model_fails_the_answer(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("slow answer", chunk_size=4, delay_s=0.5)
    with pytest.raises(ModelFailed):
        await answer(ModelAnswerer(make_settings(chat_timeout_s=0.1)), [])


def test_a_website_page_is_cited_as_a_link_named_by_its_heading() -> None:
    page = Passage(Chunk("Run pipx.", "https://docs.example.com/guide/install.html", "Install"), 1)
    bare = Passage(Chunk("Home.", "https://docs.example.com/a (b).html"), 0.5)
    footer = sources_footer([page, bare, QUEUES])
    assert footer == (
        "\n\n_Sources: [Install](https://docs.example.com/guide/install.html); "
        "[https://docs.example.com/a (b).html](https://docs.example.com/a%20%28b%29.html); "
        "ops.md › Queues › Limits_"
    )
