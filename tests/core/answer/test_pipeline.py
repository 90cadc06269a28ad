"""The pipeline end to end: real Redis, the real ChatOpenAI client against the local server."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from core import sessions
from core.answer.pipeline import Pipeline
from core.errors import HistoryUnavailable, MessageGone, ModelFailed, QuestionRejected
from core.reply.editor import StreamingEditor
from core.store.history import RedisHistory
from tests.fakes.fake_openai import FakeOpenAI


async def collect(pipeline: Pipeline, session: str, question: str) -> str:
    return "".join([chunk async for chunk in pipeline.answer(session, question)])


async def stored(pipeline: Pipeline, session: str) -> list:
    return await pipeline.store.history(session).aget_messages()


async def test_answer_streams_and_saves_the_turn(pipeline: Pipeline, fake_openai: FakeOpenAI):
    fake_openai.script("Redis keeps the history.", chunk_size=4)
    chunks = [c async for c in pipeline.answer("console:t", "Where is history kept?")]
    assert len(chunks) > 3  # streamed, not one blob
    assert "".join(chunks).startswith("Redis keeps the history.")
    messages = await stored(pipeline, "console:t")
    # No document matched (an empty index): the answer is marked as one the documents miss.
    assert messages == [
        HumanMessage("Where is history kept?"),
        AIMessage("Redis keeps the history.", additional_kwargs={"uncovered": True}),
    ]
    assert type(messages[1]) is AIMessage


async def test_follow_up_sends_history_to_the_model(pipeline: Pipeline, fake_openai: FakeOpenAI):
    await collect(pipeline, "console:h", "first question")
    answer = await collect(pipeline, "console:h", "second question")
    assert answer.startswith("You said: second question")
    roles = [(m["role"], m["content"]) for m in fake_openai.requests[-1]["messages"][1:]]
    assert roles == [
        ("user", "first question"),
        ("assistant", "You said: first question"),
        ("user", "second question"),
    ]


async def test_model_failure_mid_answer_saves_nothing(pipeline: Pipeline, fake_openai: FakeOpenAI):
    fake_openai.script("partial answer that breaks", chunk_size=5, fail_after_chunks=2)
    seen: list[str] = []
    with pytest.raises(ModelFailed):
        async for chunk in pipeline.answer("console:f", "q"):
            seen.append(chunk)
    assert "".join(seen) == "partial an"
    assert await stored(pipeline, "console:f") == []


async def test_disconnect_mid_answer_is_a_model_failure(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    fake_openai.script("x" * 40, chunk_size=5, fail_after_chunks=2, fail_mode="disconnect")
    with pytest.raises(ModelFailed):
        await collect(pipeline, "console:d", "q")
    assert await stored(pipeline, "console:d") == []


async def test_a_stream_that_ends_without_a_finish_reason_is_a_failure(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    fake_openai.script("x" * 40, chunk_size=5, fail_after_chunks=2, fail_mode="truncate")
    seen: list[str] = []
    with pytest.raises(ModelFailed):
        async for chunk in pipeline.answer("console:cut", "q"):
            seen.append(chunk)
    assert "".join(seen) == "x" * 10  # shown as it came, then the warning
    assert await stored(pipeline, "console:cut") == []


@pytest.mark.parametrize("status", [429, 500])
async def test_model_http_errors_are_model_failures(
    pipeline: Pipeline, fake_openai: FakeOpenAI, status: int
):
    fake_openai.script("", status=status)
    with pytest.raises(ModelFailed) as info:
        await collect(pipeline, "console:e", "q")
    if status == 429:
        assert "rate limited" in info.value.user_message
    assert await stored(pipeline, "console:e") == []


async def test_two_questions_at_once_are_answered_in_order(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    fake_openai.script("one " * 10, chunk_size=3, delay_s=0.01)
    fake_openai.script("two " * 10, chunk_size=3, delay_s=0.01)
    first, second = await asyncio.gather(
        collect(pipeline, "console:o", "q1"), collect(pipeline, "console:o", "q2")
    )
    assert first.startswith("one") and second.startswith("two")
    contents = [m.content for m in await stored(pipeline, "console:o")]
    assert contents == ["q1", "one " * 10, "q2", "two " * 10]


async def test_empty_and_huge_questions(pipeline: Pipeline, make_settings):
    assert "Ask me a question" in await collect(pipeline, "console:x", "   ")
    with pytest.raises(QuestionRejected) as info:
        await collect(pipeline, "console:x", "y" * 5000)
    assert "5,000 characters" in info.value.user_message
    assert await stored(pipeline, "console:x") == []


async def test_reset_reset_many_and_dedupe(pipeline: Pipeline):
    for session in ["slack:T:C:1.0", "slack:T:C:2.0", "slack:T:C", "slack:T:D:1.0"]:
        await collect(pipeline, session, "hello")
    assert await pipeline.has_history("slack:T:C:1.0")
    assert await pipeline.reset("slack:T:C:1.0") is True
    assert await pipeline.reset("slack:T:C:1.0") is False
    assert await pipeline.reset_many("slack:T:C") == 2
    assert not await pipeline.has_history("slack:T:C:2.0")
    assert await pipeline.has_history("slack:T:D:1.0")  # another channel is untouched
    lease = pipeline.store.lease()
    assert (await pipeline.store.claim("ev1", lease)).status == "new"
    assert (await pipeline.store.claim("ev1", pipeline.store.lease())).status == "busy"
    await pipeline.store.complete("ev1", lease)
    assert (await pipeline.store.claim("ev1", pipeline.store.lease())).status == "done"
    await lease.aclose()


async def test_redis_down_is_a_clear_error(make_settings):
    # A port nothing listens on: connection refused.
    async with await Pipeline.create(make_settings(redis_url="redis://127.0.0.1:1/0")) as pipeline:
        with pytest.raises(HistoryUnavailable) as info:
            await collect(pipeline, "console:r", "q")
        assert "conversation store" in info.value.user_message
        with pytest.raises(HistoryUnavailable):
            await pipeline.reset("console:r")


async def test_history_is_trimmed_and_expires(make_settings, redis_url):
    async with await Pipeline.create(
        make_settings(history_max_messages=4, history_ttl_seconds=100)
    ) as pipeline:
        for n in range(3):
            await collect(pipeline, "console:trim", f"q{n}")
        contents = [m.content for m in await stored(pipeline, "console:trim")]
        assert contents == ["q1", "You said: q1", "q2", "You said: q2"]
        history = pipeline.store.history("console:trim")
        ttl = await pipeline.store.redis.ttl(history.key)
        assert 0 < ttl <= 100


def test_sync_accessors_refuse_to_block(pipeline_history_cls=RedisHistory):
    history = pipeline_history_cls(None, "s")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _ = history.messages


class GoneAfterFirstPost:
    """A sink whose message is deleted by a user right after it appears."""

    max_len = 2000

    async def post(self, text: str) -> int:
        return 1

    async def edit(self, handle: int, text: str) -> None:
        raise MessageGone("deleted")


async def test_deleted_reply_cancels_the_model_and_saves_nothing(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    fake_openai.script("word " * 400, chunk_size=5, delay_s=0.01)  # about 4 s if read to the end
    reply = await StreamingEditor(GoneAfterFirstPost(), interval_s=0).run(
        pipeline.answer("console:gone", "q")
    )
    assert reply.gone
    await fake_openai.wait_for_cancel()
    assert fake_openai.cancelled == 1
    assert await stored(pipeline, "console:gone") == []
    # The session's lock was released: the next question is answered at once.
    fake_openai.script("fine")
    assert (await collect(pipeline, "console:gone", "again")).startswith("fine")


async def test_one_embedded_server_per_data_folder(tmp_path):
    from core.store.redis_server import EmbeddedRedis, EmbeddedServerBusy

    first = EmbeddedRedis(tmp_path)
    await asyncio.to_thread(first.start)
    try:
        with pytest.raises(EmbeddedServerBusy, match="REDIS_URL"):
            EmbeddedRedis(tmp_path).start()
    finally:
        await asyncio.to_thread(first.stop)
    second = EmbeddedRedis(tmp_path)  # free again once the first has stopped
    await asyncio.to_thread(second.start)
    await asyncio.to_thread(second.stop)


def test_shard_ids_need_a_shard_count(make_settings):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="DISCORD_SHARD_COUNT"):
        make_settings(discord_shard_ids=[0, 1])
    assert make_settings(discord_shard_ids=[0], discord_shard_count=2).discord_shard_ids == [0]


@pytest.mark.kills
def test_a_server_left_by_a_killed_run_is_stopped(tmp_path):
    """A threadbot killed with SIGKILL cannot stop its server; the next start does."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from core.store.redis_server import EmbeddedRedis
    from tests.cli_runner import env_for, popen

    script = (
        "import sys, time; from pathlib import Path; "
        "from core.store.redis_server import EmbeddedRedis; "
        "EmbeddedRedis(Path(sys.argv[1])).start(); print('up', flush=True); time.sleep(60)"
    )
    child = popen(
        [sys.executable, "-c", script, str(tmp_path)],
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "up\n"
    orphan = int((tmp_path / "valkey" / "threadbot.lock").read_text().split()[1])
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert Path(f"/proc/{orphan}").exists()  # left behind, still holding the data folder
    server = EmbeddedRedis(tmp_path)
    server.start()
    try:
        gone = not Path(f"/proc/{orphan}").exists()
        assert gone or b"valkey" not in Path(f"/proc/{orphan}/cmdline").read_bytes()
    finally:
        server.stop()


def test_empty_values_in_dotenv_count_as_unset(tmp_path):
    from core.settings import Settings

    env_file = tmp_path / ".env"
    env_file.write_text("OPENAI_API_KEY=\nREDIS_URL=\nEMBEDDINGS=\nCHAT_MODEL=my-model\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.openai_api_key is None and settings.redis_url is None
    assert settings.embeddings_kind == "local" and not settings.generates_answers
    assert settings.chat_model == "my-model"


async def test_undecodable_input_is_answered_not_crashed(
    pipeline: Pipeline, fake_openai: FakeOpenAI
):
    answer = await collect(pipeline, "console:u", "a\udcffb and \ud800")
    assert answer.startswith("You said: a?b and ?")


async def test_a_long_answer_keeps_its_conversation_leased(make_settings, fake_openai: FakeOpenAI):
    # The lease lives 0.3 s; the answer streams for ~1.6 s: the heartbeat keeps it all along.
    settings = make_settings(lease_s=0.3)
    lock_key = f"{settings.redis_namespace}lock:console:long"
    fake_openai.script("x" * 80, chunk_size=1, delay_s=0.02)
    async with await Pipeline.create(settings) as pipeline:
        held_late = False
        started = asyncio.get_running_loop().time()
        async for _ in pipeline.answer("console:long", "q"):
            if asyncio.get_running_loop().time() - started > 1.0:
                held_late = held_late or bool(await pipeline.store.redis.exists(lock_key))
        assert held_late
        assert not await pipeline.store.redis.exists(lock_key)  # released at the end


@pytest.mark.parametrize("reset_channel", [False, True])
async def test_a_reset_during_an_answer_forgets_that_answer_too(
    pipeline: Pipeline, fake_openai: FakeOpenAI, reset_channel: bool
):
    session = "slack:T:C:1.0"
    await collect(pipeline, session, "before")
    fake_openai.script("slow answer " * 10, chunk_size=6, delay_s=0.01)
    seen = 0
    async for _ in pipeline.answer(session, "during"):
        seen += 1
        if seen == 3:  # mid-answer, someone resets the thread (or the whole channel)
            if reset_channel:
                assert await pipeline.reset_many("slack:T:C") == 1
            else:
                assert await pipeline.reset(session)
    assert await stored(pipeline, session) == []
    # The next question starts afresh, and is remembered again.
    await collect(pipeline, session, "after")
    assert [m.content for m in await stored(pipeline, session)] == ["after", "You said: after"]


async def test_unrelated_questions_find_no_passages(make_settings):
    from core import ingest
    from core.knowledge.embeddings import LocalEmbeddings
    from tests.conftest import SAMPLE_DOCS

    settings = make_settings(openai_api_key=None, openai_base_url=None)  # retrieval only
    embeddings = LocalEmbeddings()
    await asyncio.to_thread(
        ingest, settings, [SAMPLE_DOCS], embeddings, embeddings.name, progress=False
    )
    async with await Pipeline.create(settings) as pipeline:
        unrelated = await collect(pipeline, "console:m", "what's the weather like?")
        assert unrelated.startswith("I found nothing about that")
        related = await collect(pipeline, "console:m", "How do I reset a conversation?")
        assert "Forgetting a conversation" in related
        # Kept as history: a line naming what was shown, not the passages themselves.
        kept = [m.content for m in await stored(pipeline, "console:m")]
        assert kept[1] == "(Retrieval-only answer: nothing in the documents matched.)"
        assert kept[3].startswith("(Retrieval-only answer: showed the passages conversations.md")
        assert "it forgets the current session" in related  # shown to the user...
        assert "it forgets the current session" not in kept[3]  # ...but not kept as history


async def test_histories_saved_under_untagged_session_ids_move_once(make_settings):
    """An upgrade keeps every conversation: what an older threadbot saved under `slack:T:C:ts`
    is found under `slack:{T:C}:ts`, and a channel's /reset and a user's forget still reach it."""
    settings = make_settings()
    old = ["slack:T:C:1.0", "slack:T:D", "discord:7:8", "discord:dm:9", "console:home"]
    async with await Pipeline.create(settings) as before:
        redis = before.store.redis
        await redis.delete(f"{settings.redis_namespace}layout")  # as an older version left it
        for session in old:
            await before.store.history(session).aadd_messages([HumanMessage("q"), AIMessage("a")])
        await redis.sadd(f"{settings.redis_namespace}user:slack:U1", "slack:T:C:1.0")
    async with await Pipeline.create(settings) as after:
        new = [
            sessions.slack_session("T", "C", "1.0"),
            sessions.slack_session("T", "D"),
            sessions.discord_session(7, 8),
            sessions.discord_session(None, 9),
            sessions.console_session("home"),
        ]
        assert [await after.has_history(s) for s in new] == [True] * 5
        assert [await after.has_history(s) for s in old] == [False] * 5
        assert await after.store.sessions_of("slack:U1") == [new[0]]
        assert await after.reset_many(sessions.slack_session("T", "C")) == 1
        assert await after.store.migrate() == 0  # once
