"""The few errors threadbot expects, each carrying the short text a user is shown."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.exceptions import RedisError


class ThreadbotError(Exception):
    """An expected failure; `user_message` is safe to show in the chat (no secrets, no traces)."""

    user_message = "Something went wrong on my side. Please try again."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class HistoryUnavailable(ThreadbotError):
    user_message = (
        "I can't reach my conversation store right now, so I didn't answer. "
        "Please try again in a minute."
    )


@contextlib.contextmanager
def store_errors(doing: str, *, user_message: str | None = None) -> Iterator[None]:
    """The one place a Redis error becomes `HistoryUnavailable` (what the user is told), with
    what the bot was `doing` kept for the log."""
    try:
        yield
    except RedisError as exc:
        raise HistoryUnavailable(f"{doing}: {exc}", user_message=user_message) from exc


class ModelFailed(ThreadbotError):
    user_message = (
        "The language model stopped before finishing this answer, so it was not saved to "
        "the conversation. Please ask again."
    )


class RetrievalFailed(ThreadbotError):
    user_message = (
        "I couldn't search the documents just now (the embedding service failed), "
        "so I didn't answer. Please try again in a minute."
    )


class QuestionRejected(ThreadbotError):
    """The question itself cannot be answered (too long); the message says what to change."""


class LeaseLost(ThreadbotError):
    """This process stalled past its lease and another took the turn over: stop, show nothing."""

    user_message = "This answer was taken over by another worker."


class Busy(ThreadbotError):
    user_message = (
        "I'm still answering an earlier question in this conversation. Please try again shortly."
    )


# Errors a Sink raises; the streaming editor knows how to handle each one.


class SinkError(Exception):
    """Raised by a Sink; the platform adapter translates its client's errors into these."""


class RateLimited(SinkError):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after_s:.2f}s")
        self.retry_after_s = retry_after_s


class MessageGone(SinkError):
    """The message being edited was deleted (by a user or a moderator): stop streaming."""


class MessageTooLong(SinkError):
    """The platform refused the text as too long, below the limit the sink declared."""


class NoAccess(SinkError):
    """The bot may not post here: nothing can be shown, not even an apology."""


class StreamRefused(SinkError):
    """An append-only sink's first post: the platform will not stream here (the editor then
    shows the reply through its fallback sink, by editing)."""
