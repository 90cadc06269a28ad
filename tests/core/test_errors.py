"""The error tree of core/errors.py: one root, a docstring that names what is defined, and the
one place a Redis error becomes a project error."""

from __future__ import annotations

import inspect
import re

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

import core.errors
from core.errors import (
    Busy,
    HistoryUnavailable,
    ModelFailed,
    RateLimited,
    SinkError,
    ThreadbotError,
    ThreadbotException,
    store_errors,
)


def defined_classes() -> dict[str, type]:
    return {
        name: cls
        for name, cls in inspect.getmembers(core.errors, inspect.isclass)
        if cls.__module__ == core.errors.__name__
    }


def docstring_tree() -> dict[str, str | None]:
    """Each class the docstring's tree names, with the class it hangs under (None: the root)."""
    doc = core.errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*(?:[│ ]*)(?:[├└]── )?)([A-Z]\w+)\s{2,}", line)
        if match is None or not line.startswith("    "):
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def test_the_module_defines_the_classes_at_all():
    assert len(defined_classes()) >= 10


@pytest.mark.parametrize("name", sorted(defined_classes()))
def test_every_class_derives_from_the_root(name: str):
    assert issubclass(defined_classes()[name], ThreadbotException)


def test_the_docstring_tree_names_exactly_the_classes_defined():
    assert set(docstring_tree()) == set(defined_classes())


def test_the_docstring_tree_shows_each_class_under_its_real_base():
    classes = defined_classes()
    for name, parent in docstring_tree().items():
        bases = classes[name].__bases__
        if parent is None:
            assert bases == (Exception,), name
        else:
            assert bases == (classes[parent],), name


def test_store_errors_turns_a_redis_error_into_history_unavailable_keeping_the_cause():
    cause = RedisConnectionError("connection refused")
    with pytest.raises(HistoryUnavailable) as caught:
        with store_errors("reading the history"):
            raise cause
    assert caught.value.__cause__ is cause
    assert "reading the history" in str(caught.value)
    assert "connection refused" in str(caught.value)
    assert caught.value.user_message == HistoryUnavailable.user_message


@pytest.mark.parametrize("error", [ResponseError("WRONGTYPE"), RedisError("any")])
def test_store_errors_translates_every_redis_error(error: RedisError):
    with pytest.raises(HistoryUnavailable) as caught:
        with store_errors("saving"):
            raise error
    assert caught.value.__cause__ is error


def test_store_errors_passes_a_user_message_through():
    with pytest.raises(HistoryUnavailable) as caught:
        with store_errors("saving", user_message="Saved nothing."):
            raise RedisError("down")
    assert caught.value.user_message == "Saved nothing."
    assert HistoryUnavailable.user_message != "Saved nothing."  # the class keeps its own


def test_store_errors_leaves_other_errors_alone():
    with pytest.raises(ValueError):
        with store_errors("saving"):
            raise ValueError("not redis")


def test_store_errors_is_silent_when_nothing_fails():
    with store_errors("saving"):
        result = 1 + 1
    assert result == 2


def test_user_message_overrides_on_the_instance_only():
    error = ModelFailed("stream cut", user_message="Try again later.")
    assert error.user_message == "Try again later."
    assert ModelFailed().user_message == ModelFailed.user_message
    assert str(error) == "stream cut"


def test_without_detail_the_message_is_the_user_message():
    assert str(Busy()) == Busy.user_message
    assert str(ThreadbotError()) == ThreadbotError.user_message


def test_rate_limited_keeps_the_wait():
    error = RateLimited(1.5)
    assert isinstance(error, SinkError)
    assert error.retry_after_s == 1.5
    assert "1.50" in str(error)
