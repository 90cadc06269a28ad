"""The turn runner, once for every platform: a recording sink, real Redis, the real chat client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from core.answer.asked import Asked, Step
from core.answer.pipeline import Pipeline
from core.errors import HistoryUnavailable, ModelFailed, NoAccess, NotAllowed, ThreadbotError
from core.reply.editor import MARKER
from core.store.scripts import NEXT as _NEXT
from core.turn.access import AccessRules
from core.turn.runner import GONE, NO_ANSWER, TurnRunner
from core.turn.types import Outcome, Turn
from tests.conftest import MakeSettings
from tests.core.answer.test_attachments import File
from tests.core.answer.test_context import Reader
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.recording_sink import RecordingSink

SESSION = "test:T:C:1.0"


def turn(question: str = "what is threadbot?", **fields: Any) -> Turn:
    return Turn("test", SESSION, question, user="U1", place="in this thread", **fields)


@pytest.fixture
async def runner(pipeline: Pipeline) -> Any:
    async with TurnRunner(pipeline, interval_s=0, grace_s=0) as made:
        yield made


async def test_an_answer_replaces_the_placeholder_and_is_saved(
    runner: TurnRunner, pipeline: Pipeline
) -> None:
    outcomes: list[Outcome] = []
    runner.add_listener(outcomes.append)
    sink = RecordingSink(placeholder="…")
    outcome = await runner.run(turn(), sink)
    assert outcome.status == "answered" and outcomes == [outcome]
    assert sink.messages == ["You said: what is threadbot?"]  # the placeholder, edited
    assert await pipeline.has_history(SESSION)
    reply = outcome.reply
    assert reply is not None and None not in (reply.first_text_at, reply.final_at)
    times = [outcome.received_at, reply.first_text_at, reply.stream_ended_at, reply.final_at]
    assert times == sorted(times)  # type: ignore[type-var]


async def test_each_event_is_answered_once(runner: TurnRunner, fake_openai: FakeOpenAI) -> None:
    sink = RecordingSink()
    first = await runner.run(turn(event_key="test:ev1"), sink)
    again = await runner.run(turn(event_key="test:ev1", retried=True), sink)
    assert (first.status, again.status) == ("answered", "duplicate")
    assert len(sink.messages) == 1 and len(fake_openai.requests) == 1


async def test_the_store_down_is_told_once_and_logged_with_the_session(
    make_settings: MakeSettings, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{unused_tcp_port}/0")
    async with (
        await Pipeline.create(settings) as down,
        TurnRunner(down, interval_s=0, grace_s=0) as runner,
    ):
        sink = RecordingSink()
        with caplog.at_level(logging.WARNING, logger="core.turn.runner"):
            told = await runner.run(turn(event_key="test:ev2"), sink)
            redelivered = await runner.run(turn(event_key="test:ev2", retried=True), sink)
    assert isinstance(told.error, HistoryUnavailable) and told.status == "failed"
    assert redelivered.status == "duplicate"  # most likely answered: no second apology
    assert sink.messages == [f"⚠️ {HistoryUnavailable.user_message}"]
    shown = [r for r in caplog.records if SESSION in r.getMessage()]
    assert any("HistoryUnavailable" in r.getMessage() for r in shown)


async def test_an_error_inside_the_answer_is_shown_after_the_text_and_logged(
    runner: TurnRunner, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.script("The first part of the answer", chunk_size=5, fail_after_chunks=3)
    sink = RecordingSink()
    with caplog.at_level(logging.WARNING, logger="core.turn.runner"):
        outcome = await runner.run(turn(), sink)
    assert isinstance(outcome.error, ModelFailed)
    [shown] = sink.messages
    assert shown.startswith("The first part") and shown.endswith(ModelFailed.user_message)
    assert MARKER not in shown
    [record] = [r for r in caplog.records if SESSION in r.getMessage()]
    assert "ModelFailed" in record.getMessage()


async def test_an_unexpected_failure_ends_the_reply_with_the_one_apology(
    runner: TurnRunner, caplog: pytest.LogCaptureFixture, pipeline: Pipeline
) -> None:
    class RefusesFirstEdit(RecordingSink):
        async def edit(self, handle: int, text: str) -> None:
            if not self.failures:
                await super().edit(handle, text)
                return
            self.failures.pop(0)
            raise RuntimeError("the platform refused the text")

    sink = RefusesFirstEdit(placeholder="…")
    sink.failures = [RuntimeError()]
    outcome = await runner.run(turn(), sink)
    assert outcome.status == "failed"
    assert sink.messages == [f"⚠️ {ThreadbotError.user_message}"]  # the placeholder, replaced
    assert "answering test:" in caplog.text  # logged with its traceback
    assert not await pipeline.has_history(SESSION)


async def test_resets_tell_the_asker_privately(runner: TurnRunner, pipeline: Pipeline) -> None:
    sink = RecordingSink()
    await runner.run(turn(), sink)
    await runner.run(Turn("test", "test:T:C:2.0", "hi", place="in this thread"), sink)
    reset = await runner.run(turn(action="reset"), sink)
    again = await runner.run(turn(action="reset"), sink)
    everything = Turn("test", "test:T:C", place="in this channel", action="reset_all")
    channel = await runner.run(everything, sink)
    assert reset.status == "reset" and not await pipeline.has_history("test:T:C:2.0")
    assert sink.notices == [
        "Forgot our conversation in this thread.",
        "Nothing to forget in this thread.",
        "Forgot 1 conversation in this channel.",
    ]
    assert channel.shown == ["Forgot 1 conversation in this channel."] and again.shown


async def test_an_empty_answer_says_so(runner: TurnRunner, fake_openai: FakeOpenAI) -> None:
    fake_openai.script("")
    sink = RecordingSink()
    await runner.run(turn(), sink)
    assert sink.messages == [NO_ANSWER]


async def test_a_deleted_reply_stops_the_answer_and_tells_the_asker(
    runner: TurnRunner, fake_openai: FakeOpenAI, pipeline: Pipeline
) -> None:
    from core.errors import MessageGone

    fake_openai.script("word " * 400, chunk_size=5, delay_s=0.01)  # about 4 s if not stopped

    class GoneOnEdit(RecordingSink):
        async def edit(self, handle: int, text: str) -> None:
            raise MessageGone("deleted")

    gone_sink = GoneOnEdit()
    outcome = await runner.run(turn(), gone_sink)
    assert outcome.status == "gone" and gone_sink.notices == [GONE]
    await fake_openai.wait_for_cancel()
    assert not await pipeline.has_history(SESSION)


async def test_no_access_is_logged_once_and_nothing_is_tried_again(
    runner: TurnRunner, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink()
    sink.failures = [NoAccess("403"), NoAccess("403")]
    with caplog.at_level(logging.WARNING, logger="core.turn.runner"):
        first = await runner.run(turn("one"), sink)
        second = await runner.run(turn("two"), sink)
    assert first.status == second.status == "failed" and sink.messages == []
    assert len([r for r in caplog.records if "missing permission" in r.getMessage()]) == 1


async def test_closing_the_runner_cancels_what_outlives_the_grace(
    pipeline: Pipeline, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("slow " * 400, chunk_size=5, delay_s=0.01)  # about 4 s
    sink = RecordingSink()
    async with TurnRunner(pipeline, interval_s=0, grace_s=0.2) as runner:
        await runner.submit(turn(), sink)
        async with asyncio.timeout(30):
            await sink.posted.wait()  # streaming (however loaded the machine), not done
    await fake_openai.wait_for_cancel()
    assert fake_openai.cancelled == 1
    assert not await pipeline.has_history(SESSION)  # a cancelled turn saves nothing


async def test_turns_of_one_session_run_in_the_order_submitted(
    runner: TurnRunner, fake_openai: FakeOpenAI, pipeline: Pipeline
) -> None:
    fake_openai.script("first, slowly", chunk_size=2, delay_s=0.01)
    sink = RecordingSink()
    await runner.submit(turn("q1"), sink)
    await runner.submit(turn("q2"), sink)
    await runner.drain()
    stored = await pipeline.store.history(SESSION).aget_messages()
    assert [m.content for m in stored] == ["q1", "first, slowly", "q2", "You said: q2"]


async def test_a_turn_cancelled_in_line_gives_its_place_up(
    pipeline: Pipeline, fake_openai: FakeOpenAI
) -> None:
    """Shut down while a second question waits: its ticket leaves the line at once, so another
    worker's next question in this conversation need not wait out the lease."""
    fake_openai.script("slow " * 400, chunk_size=5, delay_s=0.01)
    sink = RecordingSink()
    async with TurnRunner(pipeline, interval_s=0, grace_s=0.2) as runner:
        await runner.submit(turn("q1"), sink)
        await runner.submit(turn("q2"), sink)  # waits behind q1 in this process
        async with asyncio.timeout(30):
            await sink.posted.wait()
    line = f"{pipeline.store._settings.redis_namespace}line:{SESSION}"
    assert await pipeline.store.redis.zcard(line) == 0
    assert [k async for k in pipeline.store.redis.scan_iter(match="*waiting:*")] == []


async def test_a_claim_or_a_take_sent_again_answers_as_the_first_did(pipeline: Pipeline) -> None:
    """A client resends a script whose reply a dropped connection lost: the event stays ours
    (not a duplicate of itself), and the conversation stays taken (no second place in line)."""
    store = pipeline.store
    lease = store.lease()
    try:
        assert (await store.claim("test:EvAGAIN", lease)).status == "new"
        assert (await store.claim("test:EvAGAIN", lease)).status == "new"
        assert (await store.claim("test:EvAGAIN", store.lease())).status == "busy"
        async with store.conversation(SESSION, lease):
            ns = store._settings.redis_namespace
            step = await store.redis.eval(
                _NEXT, 3, f"{ns}line:{SESSION}", f"{ns}lock:{SESSION}",
                f"{ns}waiting:{SESSION}:{lease.token}", lease.token, lease.token, lease.lease_ms,
            )  # fmt: skip
            assert step == [b"taken"]
    finally:
        await lease.aclose()


async def test_past_max_answers_at_once_answers_wait_for_a_free_slot(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    """Six conversations at once with room for two: never more than two streams, all answered."""
    for _ in range(6):
        fake_openai.script("word " * 20, chunk_size=2, delay_s=0.02)
    async with (
        await Pipeline.create(make_settings(max_answers_at_once=2)) as capped,
        TurnRunner(capped, interval_s=0, grace_s=0) as runner,
    ):
        outcomes: list[Outcome] = []
        runner.add_listener(outcomes.append)
        sinks = [RecordingSink(placeholder="…") for _ in range(6)]
        for n, sink in enumerate(sinks):
            await runner.submit(Turn("test", f"test:{{T:C{n}}}", f"q{n}"), sink)
        for _ in range(3000):  # two stream, four wait: what the metrics' gauge shows
            if capped.waiting_for_slot == 4:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail(f"{capped.waiting_for_slot} answers waited for a slot, not 4")
        await runner.drain()
        assert capped.waiting_for_slot == 0
    assert [o.status for o in outcomes] == ["answered"] * 6
    spans = sorted((s.first_at, s.last_at) for s in fake_openai.streams)
    overlap = max(sum(a <= t <= b for a, b in spans) for t, _ in spans)
    assert len(spans) == 6 and overlap <= 2


async def test_a_reset_on_another_worker_forgets_a_question_waiting_in_line(
    pipeline: Pipeline, make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    """q1 streams and q2 waits its turn on this worker when another worker runs a reset: both
    arrived before the reset, so neither is remembered (q2 starts after it, and is forgotten)."""
    fake_openai.script("first, slowly " * 20, chunk_size=4, delay_s=0.02)
    sink = RecordingSink()
    async with (
        TurnRunner(pipeline, interval_s=0, grace_s=5) as runner,
        await Pipeline.create(make_settings()) as other_worker,
    ):
        await runner.submit(turn("q1"), sink)
        await runner.submit(turn("q2"), sink)
        async with asyncio.timeout(30):
            await sink.posted.wait()  # q1 streams, q2 is in line
        assert await other_worker.reset(SESSION) is False  # nothing saved yet
        await runner.drain()
    assert sink.messages[-1] == "You said: q2"  # answered, after the reset
    assert not await pipeline.has_history(SESSION)


async def test_an_asker_not_allowed_is_told_privately_and_nothing_is_asked(
    runner: TurnRunner, fake_openai: FakeOpenAI, pipeline: Pipeline
) -> None:
    rules = AccessRules(users=frozenset({"U9"}))

    async def only_if() -> bool:
        rules.check("U1", (), ("C",), is_dm=False)
        return True

    sink = RecordingSink(placeholder="…")
    outcome = await runner.run(turn(event_key="test:evNA"), sink, only_if=only_if)
    assert outcome.status == "refused" and isinstance(outcome.error, NotAllowed)
    assert sink.notices == outcome.shown == [NotAllowed.user_message] and sink.messages == []
    assert fake_openai.requests == [] and not await pipeline.has_history(SESSION)


class StepSink(RecordingSink):
    """A sink that shows steps (Slack's task updates); `fail`: the platform refuses each."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.steps: list[Step] = []

    async def step(self, step: Step) -> None:
        self.steps.append(step)
        if self.fail:
            raise RuntimeError("task_update refused")


@pytest.mark.parametrize("fail", [False, True], ids=["shown", "refused"])
async def test_a_sink_that_shows_steps_gets_each_and_a_failing_one_costs_nothing(
    runner: TurnRunner, fail: bool
) -> None:
    sink = StepSink(fail=fail)
    asked = Asked(thread=Reader("earlier words"), files=[File("a.log", b"ERROR")])
    outcome = await runner.run(turn(), sink, asked=asked)
    assert outcome.status == "answered"
    assert sink.messages == ["You said: what is threadbot?\n\n_Sources: a.log (attached)_"]
    assert [(s.id, s.status) for s in sink.steps] == [
        (id_, status)
        for id_ in ("thread", "files", "search")
        for status in ("in_progress", "complete")
    ]
