"""`threadbot conversations` as an operator runs it, on histories real turns saved."""

from __future__ import annotations

import json
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage, message_to_dict

from core.answer.pipeline import Pipeline
from core.turn.runner import Turn, TurnRunner
from tests.cli_runner import env_for, store_env, threadbot
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.recording_sink import RecordingSink


async def test_list_show_export_forget_after_console_turns(
    tmp_path: Path, make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> None:
    env = store_env(tmp_path, make_settings, fake_openai)
    for session, questions in (("work", "first question\nsecond one\n"), ("home", "hello\n")):
        _, err, code = await threadbot("chat", "--session", session, env=env, stdin=questions)
        assert code == 0, err

    out, err, code = await threadbot("conversations", "list", env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["session", "messages", "expires", "in"]
    assert [line.split()[:2] for line in lines[1:3]] == [
        ["console:{home}", "2"],
        ["console:{work}", "4"],
    ]
    assert all(line.endswith("29d 23h") for line in lines[1:3])  # HISTORY_TTL_SECONDS: 30 days
    assert lines[3] == "2 conversations."

    out, err, code = await threadbot("conversations", "show", "console:{work}", env=env)
    assert code == 0, err
    assert out.splitlines() == [
        "console:{work}: 4 messages",
        "user> first question",
        "bot> You said: first question",
        "user> second one",
        "bot> You said: second one",
    ]

    out, err, code = await threadbot("conversations", "export", "console:{home}", env=env)
    assert code == 0, err
    assert json.loads(out) == {
        "session_id": "console:{home}",
        "messages": [
            message_to_dict(HumanMessage("hello")),
            # An empty knowledge base: the answer is marked as one the documents miss.
            message_to_dict(AIMessage("You said: hello", additional_kwargs={"uncovered": True})),
        ],
    }

    out, err, code = await threadbot("conversations", "forget", "console:{work}", env=env)
    assert (out, code) == ("Forgot console:{work}.\n", 0), err
    out, err, code = await threadbot("conversations", "show", "console:{work}", env=env)
    assert (out, err, code) == ("", "threadbot: no conversation console:{work}\n", 1)
    out, err, code = await threadbot("conversations", "forget", "console:{work}", env=env)
    assert out == "Nothing to forget: no console:{work}.\n"
    out, err, code = await threadbot("conversations", "list", env=env)
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["console:{home}"]


async def test_forget_user_forgets_every_conversation_they_took_part_in(
    tmp_path: Path,
    make_settings: MakeSettings,
    pipeline: Pipeline,
    fake_openai: FakeOpenAI,
) -> None:
    asked = [
        ("slack:T1:C1:1.0", "U1"),
        ("slack:T1:C1:1.0", "U2"),  # a thread both took part in
        ("slack:T1:C1:2.0", "U2"),
        ("slack:T1:C2:3.0", "U1"),
        ("discord:9:8", "U1"),  # the same id on another platform: someone else
    ]
    async with TurnRunner(pipeline, interval_s=0, grace_s=0) as runner:
        for session, user in asked:
            platform = session.split(":")[0]
            outcome = await runner.run(Turn(platform, session, "hi", user=user), RecordingSink())
            assert outcome.status == "answered"
    settings = make_settings()
    redis = pipeline.store.redis
    index = f"{settings.redis_namespace}user:slack:U1"
    assert await redis.smembers(index) == {b"slack:T1:C1:1.0", b"slack:T1:C2:3.0"}
    assert 0 < await redis.ttl(index) <= settings.history_ttl_seconds
    env = store_env(tmp_path, make_settings, fake_openai)

    out, err, code = await threadbot("conversations", "forget", "--user", "slack:U1", env=env)

    assert code == 0, err
    assert out.splitlines() == [
        "Forgot 2 conversations slack:U1 took part in:",
        "  slack:T1:C1:1.0",
        "  slack:T1:C2:3.0",
        "Removed 2 records of questions and votes by slack:U1.",  # what they asked, for the report
    ]
    assert {r.asker for r in await pipeline.records.since(0)} == {"slack:U2", "discord:U1"}
    remaining = await pipeline.store.conversations()
    assert [c.session_id for c in remaining] == ["discord:9:8", "slack:T1:C1:2.0"]
    assert not await redis.exists(index)
    # A bare id is looked up on every platform: U2's other thread, and U1's Discord channel.
    out, err, code = await threadbot("conversations", "forget", "--user", "U1", env=env)
    assert out.splitlines() == [
        "Forgot 1 conversation U1 took part in:",
        "  discord:9:8",
        "Removed 1 record of questions and votes by U1.",
    ], err
    out, err, code = await threadbot("conversations", "forget", "--user", "U1", env=env)
    assert out.splitlines() == [
        "Forgot 0 conversations U1 took part in.",
        "Removed 0 records of questions and votes by U1.",
    ]


async def test_store_down_is_one_line(tmp_path: Path) -> None:
    env = env_for(
        tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"), REDIS_URL="redis://127.0.0.1:1/0"
    )
    out, err, code = await threadbot("conversations", "list", env=env)
    assert (out, code) == ("", 2)
    assert err.startswith("threadbot: the conversation store does not answer (listing")
    assert len(err.splitlines()) == 1
