"""The streaming editor against a recording sink: throttle, coalescing, final edit, splitting."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest

from core.errors import (
    MessageGone,
    ModelFailed,
    RateLimited,
    SinkError,
    StreamEnded,
    StreamRefused,
)
from core.reply import editor
from core.reply.editor import MARKER, StreamingEditor
from core.reply.splitting import cut as _cut
from tests.fakes.recording_sink import RecordingSink


async def stream(parts: list[str], delay_s: float = 0.0) -> AsyncIterator[str]:
    for part in parts:
        if delay_s:
            await asyncio.sleep(delay_s)
        yield part


def words(n: int) -> list[str]:
    return [f"word{i} " for i in range(n)]


async def test_posts_once_then_edits_the_same_message_and_ends_without_marker():
    sink = RecordingSink()
    reply = await StreamingEditor(sink, interval_s=0).run(stream(words(20)))
    assert sink.calls[0][0] == "post"
    assert all(kind == "edit" and handle == 0 for kind, handle, _ in sink.calls[1:])
    assert sink.messages == ["".join(words(20)).strip()]
    assert all(text.endswith(MARKER) for _, _, text in sink.calls[:-1])
    assert not sink.calls[-1][2].endswith(MARKER)
    assert reply.posts == 1 and reply.edits == len(sink.calls) - 1


async def test_edits_are_throttled_and_the_final_edit_is_immediate():
    sink = RecordingSink()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await StreamingEditor(sink, interval_s=0.2).run(stream(words(40), delay_s=0.01))
    elapsed = loop.time() - started
    # At most one edit per interval, plus the first post and the final edit.
    assert len(sink.calls) <= elapsed / 0.2 + 2
    assert len(sink.calls) >= 2
    assert sink.messages == ["".join(words(40)).strip()]


async def test_the_final_edit_does_not_wait_for_the_interval():
    sink = RecordingSink()
    loop = asyncio.get_running_loop()
    started = loop.time()
    # One edit per minute at most: only the final edit can follow the first post in time.
    await StreamingEditor(sink, interval_s=60).run(stream(words(5), delay_s=0.01))
    assert loop.time() - started < 30
    assert [kind for kind, _, _ in sink.calls] == ["post", "edit"]
    assert sink.messages == ["".join(words(5)).strip()]


async def test_a_pause_in_the_stream_still_shows_the_text_so_far():
    sink = RecordingSink()
    shown_during_pause: list[str] = []

    async def pausing() -> AsyncIterator[str]:
        yield "first part "
        await asyncio.sleep(0.05)
        yield "more "
        await asyncio.sleep(0.3)  # the model thinks; the editor must not sit on "more"
        shown_during_pause.append(sink.messages[0])
        yield "end"

    await StreamingEditor(sink, interval_s=0.1).run(pausing())
    assert shown_during_pause == ["first part more" + MARKER]
    assert sink.messages == ["first part more end"]


async def test_rate_limit_is_waited_out_and_waiting_edits_coalesce():
    sink = RecordingSink()
    sink.fail_edits = [RateLimited(0.2)]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    editor = StreamingEditor(sink, interval_s=0.01, sleep=sleep)
    reply = await editor.run(stream(words(60), delay_s=0.005))
    assert slept == [0.2]
    assert reply.rate_limited == 1
    # After the wait, one edit carries everything that arrived meanwhile: nothing queued up.
    edits = [text for kind, _, text in sink.calls if kind == "edit"]
    lengths = [len(t) for t in edits]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    assert len(edits) < 60
    assert sink.messages == ["".join(words(60)).strip()]


async def test_long_answers_continue_in_new_messages_with_fences_intact():
    code = "```python\n" + "\n".join(f"value_{i} = {i} * 2" for i in range(120)) + "\n```\n"
    prose = " ".join(f"Sentence {i} explains things." for i in range(60))
    answer = f"{prose}\n\n{code}\nAfter the code, a closing paragraph."
    chunks = [answer[i : i + 37] for i in range(0, len(answer), 37)]
    sink = RecordingSink(max_len=600)
    reply = await StreamingEditor(sink, interval_s=0).run(stream(chunks))
    assert len(sink.messages) >= 4
    assert reply.posts == len(sink.messages)
    for message in sink.messages:
        assert len(message) <= 600
        assert len(re.findall(r"^```", message, re.MULTILINE)) % 2 == 0, message
        assert not message.endswith(MARKER)
    # Nothing lost: every line of code and every sentence is shown once, in order.
    shown = "\n".join(sink.messages)
    for i in range(120):
        assert shown.count(f"value_{i} = {i} * 2\n") == 1
    assert re.sub(r"\s+", " ", shown).count("Sentence 59 explains things.") == 1
    assert sink.messages[-1].endswith("After the code, a closing paragraph.")


async def test_platform_refusing_a_length_splits_smaller():
    sink = RecordingSink(max_len=2000)
    sink.refuse_over = 700
    text = "\n\n".join(f"Paragraph {i}. " + "x" * 150 for i in range(12))
    await StreamingEditor(sink, interval_s=0).run(stream([text]))
    assert all(len(m) <= 700 for m in sink.messages)
    assert "\n\n".join(sink.messages) == text


async def test_a_platform_that_always_refuses_the_length_ends_the_reply():
    sink = RecordingSink()
    sink.refuse_over = 0  # refuses everything, whatever its length
    with pytest.raises(SinkError):
        await StreamingEditor(sink, interval_s=0).run(stream(["x" * 3000]))
    assert sink.messages == []


async def test_a_deleted_message_stops_the_stream_and_closes_it():
    sink = RecordingSink()
    sink.fail_edits = [MessageGone("deleted")]
    produced: list[int] = []
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            for i in range(10_000):
                produced.append(i)
                yield f"w{i} "
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    reply = await StreamingEditor(sink, interval_s=0).run(endless())
    assert reply.gone
    assert closed.is_set()
    assert len(produced) < 10_000
    assert [kind for kind, _, _ in sink.calls] == ["post"]


async def test_a_failure_mid_stream_keeps_the_partial_text_and_says_so():
    async def failing() -> AsyncIterator[str]:
        yield "The answer is "
        raise ModelFailed("boom")

    sink = RecordingSink()
    reply = await StreamingEditor(sink, interval_s=0).run(failing())
    assert isinstance(reply.error, ModelFailed)
    assert sink.messages == [f"The answer is\n\n⚠️ {ModelFailed.user_message}"]


async def test_a_failure_before_any_text_shows_just_the_message():
    async def failing() -> AsyncIterator[str]:
        raise ModelFailed("boom")
        yield  # pragma: no cover

    sink = RecordingSink()
    await StreamingEditor(sink, interval_s=0).run(failing())
    assert sink.messages == [f"⚠️ {ModelFailed.user_message}"]


def split_text(text: str, limit: int) -> tuple[str, str]:
    head, reopen, rest = _cut(text, limit)
    return head, reopen + text[rest:]


@pytest.mark.parametrize(
    ("text", "head"),
    [
        ("alpha beta.\n\ngamma delta epsilon", "alpha beta."),
        ("one line here\nsecond line that is long", "one line here"),
        ("First sentence is here. Second sentence runs on", "First sentence is here."),
    ],
)
def test_split_prefers_paragraphs_then_lines_then_sentences(text: str, head: str):
    got_head, tail = split_text(text, 30)
    assert got_head == head
    assert f"{got_head} {tail}".split() == text.split()


def test_split_moves_the_cut_before_a_code_fence():
    text = "Intro paragraph.\n\n```sh\nmake run\nmake test\n```\n"
    head, tail = split_text(text, 35)
    assert head == "Intro paragraph."
    assert tail.startswith("```sh\nmake run")


async def test_the_placeholder_is_posted_at_once_waiting_out_a_rate_limit():
    sink = RecordingSink()
    limits = [RateLimited(0.05)]
    real_post = sink.post

    async def post(text: str) -> int:
        if limits:
            raise limits.pop(0)
        return await real_post(text)

    sink.post = post  # type: ignore[method-assign]
    reply = await StreamingEditor(sink, interval_s=0, placeholder="…").run(stream(words(5)))
    assert sink.calls[0] == ("post", 0, "…")
    assert sink.messages == ["".join(words(5)).strip()] and reply.rate_limited == 1
    assert [c[0] for c in sink.calls[1:]] == ["edit"] * (len(sink.calls) - 1)


class AppendingSink:
    """A platform that streams natively: a message only ever grows, then is finished."""

    max_len = 10_000

    def __init__(self, *, refuse: bool = False) -> None:
        self.messages: list[str] = []
        self.calls: list[str] = []
        self.finished: list[int] = []
        self.limit_next_append = 0
        self.refuse = refuse

    async def post(self, text: str) -> int:
        if self.refuse:
            raise StreamRefused("not here")
        self.calls.append("post")
        self.messages.append(text)
        return len(self.messages) - 1

    async def append(self, handle: int, text: str) -> None:
        if self.limit_next_append:
            self.limit_next_append -= 1
            raise RateLimited(0.05)
        assert handle not in self.finished
        self.calls.append("append")
        self.messages[handle] += text

    async def finish(self, handle: int, text: str) -> None:
        assert handle not in self.finished
        self.calls.append("finish")
        self.messages[handle] += text
        self.finished.append(handle)


async def test_an_append_sink_gets_each_piece_once_and_one_finish():
    sink = AppendingSink()
    sink.limit_next_append = 1
    reply = await StreamingEditor(sink, interval_s=0.02).run(stream(words(80), delay_s=0.002))
    assert sink.messages == ["".join(words(80))]  # nothing lost, nothing twice, no marker
    assert sink.calls[0] == "post" and sink.calls[-1] == "finish" and sink.finished == [0]
    assert reply.rate_limited == 1 and sink.calls.count("append") < 80


async def test_an_append_sink_that_refuses_hands_over_to_its_fallback():
    fallback = RecordingSink()
    editor = StreamingEditor(
        AppendingSink(refuse=True), interval_s=0, placeholder="…", fallback=fallback
    )
    reply = await editor.run(stream(words(10)))
    assert fallback.calls[0] == ("post", 0, "…")
    assert fallback.messages == ["".join(words(10)).strip()] and reply.posts == 1


class Typing:
    """A `preparing` indicator: comes up at once, or raises on the way in ("fail"), or never
    comes up ("hang"); `events` says what it did."""

    def __init__(self, mode: str = "up") -> None:
        self.mode = mode
        self.events: list[str] = []

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        if self.mode == "fail":
            raise RuntimeError("no typing indicator here")
        if self.mode == "hang":
            await asyncio.sleep(60)
        self.events.append("up")
        try:
            yield
        finally:
            self.events.append("down")


async def test_preparing_that_comes_up_replaces_the_placeholder():
    sink, typing = RecordingSink(), Typing()
    reply = await StreamingEditor(sink, interval_s=0, placeholder="…", preparing=typing).run(
        stream(words(5), delay_s=0.05)
    )
    assert "…" not in [text for _, _, text in sink.calls]
    assert sink.calls[0][0] == "post" and sink.messages == ["".join(words(5)).strip()]
    assert typing.events == ["up", "down"] and reply.posts == 1


@pytest.mark.parametrize("mode", ["fail", "hang"])
async def test_preparing_that_does_not_come_up_in_time_leaves_the_placeholder(
    mode: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(editor, "PREPARING_WAIT_S", 0.05)
    sink, typing = RecordingSink(), Typing(mode)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await StreamingEditor(sink, interval_s=0, placeholder="…", preparing=typing).run(
        stream(words(5), delay_s=0.1)
    )
    assert sink.calls[0] == ("post", 0, "…")
    assert sink.messages == ["".join(words(5)).strip()] and typing.events == []
    assert loop.time() - started < 30  # a hung indicator is dropped, not waited for


async def test_text_ready_before_preparing_comes_up_is_not_held_for_it():
    sink = RecordingSink()
    reply = await StreamingEditor(
        sink, interval_s=0, placeholder="…", preparing=Typing("hang")
    ).run(stream(words(5)))
    assert reply.first_text_at is not None and reply.first_text_at - reply.stream_ended_at < 0.5


class EndedStream(AppendingSink):
    """A native stream the platform ends after `appends` appends (Slack's five minutes); its
    `fallback` edits the same chat (the same messages, by the same handles)."""

    def __init__(self, appends: int, fallback_max_len: int) -> None:
        super().__init__()
        self.appends_left = appends
        self.fallback = RecordingSink(max_len=fallback_max_len)
        self.fallback.messages = self.messages

    async def append(self, handle: int, text: str) -> None:
        if not self.appends_left:
            raise StreamEnded("message_not_in_streaming_state")
        self.appends_left -= 1
        await super().append(handle, text)

    async def finish(self, handle: int, text: str) -> None:
        if not self.appends_left:
            raise StreamEnded("message_not_in_streaming_state")
        await super().finish(handle, text)


@pytest.mark.parametrize("fallback_max_len", [2000, 200], ids=["one-message", "continued"])
async def test_a_stream_the_platform_ends_is_finished_by_editing_it(fallback_max_len: int):
    sink = EndedStream(appends=2, fallback_max_len=fallback_max_len)
    answer = "".join(words(100))
    reply = await StreamingEditor(sink, interval_s=0.01, fallback=sink.fallback).run(
        stream(words(100), delay_s=0.002)
    )
    assert sink.calls == ["post", "append", "append"] and sink.finished == []
    edits = [call for call in sink.fallback.calls if call[0] == "edit"]
    assert edits[0][1] == 0  # the streamed message goes on, edited
    assert reply.error is None and not any(MARKER in m for m in sink.messages)
    assert " ".join(sink.messages).split() == answer.split()  # nothing lost, nothing twice
    if fallback_max_len == 2000:
        assert sink.messages == [answer.strip()] and {handle for _, handle, _ in edits} == {0}
    else:
        assert len(sink.messages) >= 4 and all(len(m) <= 200 for m in sink.messages)
        posted = [handle for kind, handle, _ in sink.fallback.calls if kind == "post"]
        assert posted == list(range(1, len(sink.messages)))


async def test_a_stream_ended_with_nothing_to_edit_it_fails_the_reply():
    sink = EndedStream(appends=0, fallback_max_len=2000)
    with pytest.raises(SinkError):
        await StreamingEditor(sink, interval_s=0).run(stream(words(50), delay_s=0.002))
