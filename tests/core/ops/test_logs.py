"""Log lines: text or JSON, naming the turn they were logged in, never showing a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.ops.logs import (
    REDACTED,
    JsonFormatter,
    TextFormatter,
    bind_turn,
    configure_logging,
    secret_values,
    turn_fields,
    unbind,
)
from core.turn.types import Turn
from tests.conftest import IsolatedSettings

SLACK_TOKEN = "xoxb-1111-2222-abcdefgh"
OPENAI_KEY = "sk-test-0123456789"
TURN = Turn("slack", "slack:{T1:C1}:1.0", "q", event_key="slack:Ev1")

Configure = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """configure_logging into a StringIO; pytest's own handlers and level put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(**settings: Any) -> io.StringIO:
        stream = io.StringIO()
        values = {"slack_bot_token": SLACK_TOKEN, "openai_api_key": OPENAI_KEY, **settings}
        configure_logging(IsolatedSettings(**values), level=logging.INFO, stream=stream)
        return stream

    try:
        yield run
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def record(message: str, *args: object, name: str = "tests.logs") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_secret_values_are_every_secret_longest_first_and_never_short_ones() -> None:
    settings = IsolatedSettings(
        slack_bot_token="xoxb-short-one",
        slack_signing_secret="a-much-longer-signing-secret",
        discord_token="abc",  # too short: redacting it would blank out ordinary words
        openai_api_key="sk-key-000",
        chat_model="not-a-secret-model",
    )
    assert secret_values(settings) == [
        "a-much-longer-signing-secret",
        "xoxb-short-one",
        "sk-key-000",
    ]
    assert secret_values(IsolatedSettings()) == []


def test_text_lines_have_time_level_logger_and_no_secret(configure: Configure) -> None:
    stream = configure()
    logging.getLogger("tests.logs").warning("posting with %s and %s", SLACK_TOKEN, OPENAI_KEY)
    (line,) = lines(stream)
    assert line.endswith(f" WARNING tests.logs: posting with {REDACTED} and {REDACTED}")
    assert SLACK_TOKEN not in stream.getvalue() and OPENAI_KEY not in stream.getvalue()


def test_a_secret_in_a_traceback_is_redacted_too(configure: Configure) -> None:
    stream = configure()
    try:
        raise RuntimeError(f"401 for token {SLACK_TOKEN}")
    except RuntimeError:
        logging.getLogger("tests.logs").exception("the call failed")
    assert "RuntimeError: 401 for token " + REDACTED in stream.getvalue()
    assert SLACK_TOKEN not in stream.getvalue()


def test_json_lines_are_one_object_each_and_never_a_secret(configure: Configure) -> None:
    stream = configure(log_format="json")
    log = logging.getLogger("tests.logs")
    log.info("token %s", SLACK_TOKEN)
    try:
        raise ValueError(f"bad key {OPENAI_KEY}")
    except ValueError:
        log.exception("two\nlines")
    first, second = (json.loads(line) for line in lines(stream))
    assert first["level"] == "INFO" and first["logger"] == "tests.logs"
    assert first["message"] == f"token {REDACTED}"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "two\nlines"  # one line per entry, even for a multi-line message
    assert second["exception"].endswith(f"ValueError: bad key {REDACTED}")
    assert SLACK_TOKEN not in stream.getvalue() and OPENAI_KEY not in stream.getvalue()


def test_json_lines_redact_a_secret_that_json_escapes() -> None:
    secret = 'local"key\\with-quote'
    line = JsonFormatter([secret]).format(record("key %s", secret))
    assert json.loads(line)["message"] == f"key {REDACTED}"


def test_text_lines_redact_a_secret_that_json_would_escape() -> None:
    secret = 'local"key\\with-quote'
    assert TextFormatter([secret]).format(record("key %s", secret)).endswith(f"key {REDACTED}")


def test_the_longer_of_two_overlapping_secrets_is_redacted_whole() -> None:
    settings = IsolatedSettings(slack_bot_token="xoxb-abcdef", slack_app_token="xoxb-abcdef-more")
    line = TextFormatter(secret_values(settings)).format(record("xoxb-abcdef-more"))
    assert line.endswith(f"tests.logs: {REDACTED}")


def test_turn_fields_outside_and_inside_a_turn() -> None:
    assert turn_fields() == {}
    token = bind_turn(TURN)
    try:
        assert turn_fields() == {
            "platform": "slack",
            "session_id": "slack:{T1:C1}:1.0",
            "event_id": "slack:Ev1",
        }
    finally:
        unbind(token)
    assert turn_fields() == {}
    token = bind_turn(Turn("console", "console:{me}", "q"))  # no event: no event_id
    try:
        assert turn_fields() == {"platform": "console", "session_id": "console:{me}"}
    finally:
        unbind(token)


def test_json_lines_carry_the_bound_turns_fields(configure: Configure) -> None:
    stream = configure(log_format="json")
    log = logging.getLogger("some.library")  # any logger, not only threadbot's
    token = bind_turn(TURN)
    try:
        log.warning("inside")
    finally:
        unbind(token)
    log.warning("outside")
    inside, outside = (json.loads(line) for line in lines(stream))
    assert inside["platform"] == "slack"
    assert inside["session_id"] == "slack:{T1:C1}:1.0"
    assert inside["event_id"] == "slack:Ev1"
    assert "session_id" not in outside and "platform" not in outside


def test_text_lines_append_the_session_id(configure: Configure) -> None:
    stream = configure()
    token = bind_turn(TURN)
    try:
        logging.getLogger("tests.logs").warning("inside")
    finally:
        unbind(token)
    logging.getLogger("tests.logs").warning("outside")
    inside, outside = lines(stream)
    assert inside.endswith("tests.logs: inside [slack:{T1:C1}:1.0]")
    assert outside.endswith("tests.logs: outside")


async def test_a_turn_bound_in_one_task_is_not_seen_in_another() -> None:
    bound, go_on = asyncio.Event(), asyncio.Event()

    async def turn() -> None:
        token = bind_turn(TURN)
        bound.set()
        await go_on.wait()
        unbind(token)

    task = asyncio.create_task(turn())
    await bound.wait()
    try:
        assert turn_fields() == {}
    finally:
        go_on.set()
        await task


def test_without_time_and_level_keeps_redaction_and_the_session() -> None:
    formatter = TextFormatter([SLACK_TOKEN]).without_time_and_level()
    assert isinstance(formatter, TextFormatter)
    assert formatter.format(record("with %s", SLACK_TOKEN)) == f"tests.logs: with {REDACTED}"
    token = bind_turn(TURN)
    try:
        assert formatter.format(record("hi")) == "tests.logs: hi [slack:{T1:C1}:1.0]"
    finally:
        unbind(token)


def test_configure_logging_is_the_only_handler_at_the_level_given(configure: Configure) -> None:
    stream = configure()
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert root.level == logging.INFO
    logging.getLogger("tests.logs").debug("below the level")
    assert stream.getvalue() == ""


def test_harmless_noise_is_dropped_and_other_lines_kept(configure: Configure) -> None:
    stream = configure()
    log = logging.getLogger("discord.client")
    log.warning("PyNaCl is not installed, voice will NOT be supported")
    log.warning("As you gave `client` as well, `token` will be unused.")
    log.warning("a real problem")
    assert [line.split(": ", 1)[1] for line in lines(stream)] == ["a real problem"]


def test_a_library_warning_is_a_redacted_log_line(configure: Configure) -> None:
    stream = configure(log_format="json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated call with {OPENAI_KEY}", DeprecationWarning, stacklevel=1)
    (entry,) = (json.loads(line) for line in lines(stream))
    assert entry["logger"] == "py.warnings"
    assert f"deprecated call with {REDACTED}" in entry["message"]
