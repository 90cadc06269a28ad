"""The thread and files of a question, within their bounds; a thread that cannot be read costs
the answer its context and one warning per conversation, never the answer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.answer import context
from core.answer.asked import Earlier, Said
from core.answer.context import ContextReader, Thread
from tests.conftest import IsolatedSettings
from tests.core.answer.test_attachments import File


class Reader:
    """A platform's thread reader: the first message and the newest, at most `n` of them, as the
    `ThreadReader` contract says; `calls` holds each `n` asked for."""

    def __init__(
        self,
        *texts: str,
        more: bool = False,
        fail: Exception | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.said = [Said(f"U{n}", text) for n, text in enumerate(texts)]
        self.more, self.fail, self.delay_s = more, fail, delay_s
        self.calls: list[int] = []

    async def __call__(self, n: int) -> Earlier:
        self.calls.append(n)
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        said = (
            self.said
            if len(self.said) <= n
            else [self.said[0], *self.said[len(self.said) - n + 1 :]]
        )
        return Earlier(said, more=self.more or len(self.said) > n)


def reader_of(**bounds: int) -> ContextReader:
    return ContextReader(IsolatedSettings(**bounds))


async def test_at_most_the_messages_allowed_are_read_the_first_kept():
    reader = Reader(*(f"message {n}" for n in range(10)))
    thread = await reader_of(thread_context_messages=3).thread("s", reader)
    assert reader.calls == [3]
    assert [s.text for s in thread.messages] == ["message 0", "message 8", "message 9"]
    assert thread.cut


async def test_the_first_and_the_newest_messages_that_fit_the_tokens_are_kept():
    reader = Reader("what broke?", *(f"{n} " + "word " * 160 for n in range(1, 6)))  # ~200 each
    thread = await reader_of(thread_context_tokens=500).thread("s", reader)
    assert thread.messages == [reader.said[0], *reader.said[-2:]] and thread.cut


@pytest.mark.parametrize("more", [False, True])
async def test_older_messages_left_unread_make_the_thread_cut(more: bool):
    reader = Reader("first", "   ", "second", more=more)
    thread = await reader_of().thread("s", reader)
    assert [s.text for s in thread.messages] == ["first", "second"]  # blank ones dropped
    assert thread.cut is more


async def test_a_thread_that_cannot_be_read_is_warned_about_once_per_conversation(
    caplog: pytest.LogCaptureFixture,
):
    reader, failing = reader_of(), Reader(fail=PermissionError("missing_scope"))
    with caplog.at_level(logging.WARNING, logger="core.answer.context"):
        got = [await reader.thread(s, failing) for s in ("s1", "s1", "s2")]
    assert got == [Thread(), Thread(), Thread()]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert warned[0].startswith("answering in s1 without the thread's earlier messages")
    assert "missing_scope" in warned[0] and "s2" in warned[1]


async def test_a_slow_thread_is_not_waited_for(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(context, "READ_TIMEOUT_S", 0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    thread = await reader_of().thread("s", Reader("never seen", delay_s=30))
    assert thread == Thread() and loop.time() - started < 5


async def test_files_are_read_within_the_settings_bounds():
    reader = reader_of(files_max=2, file_max_mb=1, file_max_chars=100)
    files = [File("a.txt", b"a" * 150), File("b.log", size=2 * 1024 * 1024), File("c.txt")]
    texts, refused = await reader.files(files)
    assert [(t.name, len(t.text), t.cut) for t in texts] == [("a.txt", 100, True)]
    assert refused == [
        "b.log: too large (2.0 MB; limit 1.0 MB)",
        "c.txt: not read (only the first 2 files of a question are)",
    ]
