"""Every error threadbot raises on purpose, in one tree:

    ThreadbotException          anything threadbot raises on purpose
    ├── ThreadbotError          a turn failed; `user_message` is what the chat shows
    │   ├── HistoryUnavailable  the conversation store does not answer (every Redis error)
    │   ├── ModelFailed         the chat model failed or stopped mid-answer
    │   ├── RetrievalFailed     the embedding service failed
    │   ├── QuestionRejected    the question cannot be answered as it is (too long)
    │   ├── LeaseLost           another worker took the turn over: show nothing
    │   ├── Busy                the conversation is held by an earlier question
    │   └── NotAllowed          the asker may not ask here (allow lists): told privately
    ├── SinkError               a platform refused a post or an edit (the editor handles each)
    │   ├── RateLimited         429: retry after `retry_after_s`
    │   ├── MessageGone         the message was deleted: stop streaming
    │   ├── MessageTooLong      the text is over the platform's real limit
    │   ├── NoAccess            the bot may not post here
    │   ├── StreamRefused       no native stream here: edit instead
    │   └── StreamEnded         the platform ended a native stream: finish it by editing
    ├── KnowledgeError          the knowledge base cannot be built or read as asked
    │   ├── NothingToIndex      no document under the paths, or nothing indexed there
    │   ├── IngestRefused       the new index would replace the live one with far less
    │   ├── IndexMismatch       an index written by another threadbot version
    │   ├── IndexUnusable       an index that cannot be loaded (damaged, partial)
    │   └── SharedIndexError    a published index that is missing, malformed or corrupt
    ├── FileRefused             a file attached to a question is not read (named in the answer)
    ├── ConfigInvalid           the configuration file cannot be used (file, line and key named)
    └── EmbeddedServerBusy      another process runs the embedded server on this data folder

A third-party error is translated once, where it is met (`store_errors` for Redis), with
`raise ... from exc`; nothing else escapes as a project error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.exceptions import RedisError


class ThreadbotException(Exception):
    """The root: `except ThreadbotException` catches whatever threadbot raises on purpose."""


class ThreadbotError(ThreadbotException):
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


class NotAllowed(ThreadbotError):
    """The allow lists leave this asker, or this place, out: nothing is answered, and the
    asker alone is told (a refusal in the channel would spend the same attention). Also a
    knowledge base asked for by name at a place that may not search it."""

    user_message = "Sorry, I'm not set up to answer you here."


# Errors a Sink raises; the streaming editor knows how to handle each one.


class SinkError(ThreadbotException):
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


class StreamEnded(SinkError):
    """A native stream the platform stopped taking text (Slack's end after about five minutes):
    what was appended stays shown, and the editor finishes the reply by editing that message."""


# Errors of the knowledge base: building, loading and sharing the index.


class KnowledgeError(ThreadbotException):
    """The knowledge base cannot be built or read as asked; the message says why."""


class NothingToIndex(KnowledgeError):
    """No document under the paths given, or nothing indexed where a removal points."""


class IngestRefused(KnowledgeError):
    """The new index would replace the live one with nothing, or with far less: needs --force."""


class IndexMismatch(KnowledgeError):
    """The index on disk was written in another format (an older threadbot): ingest again."""


class IndexUnusable(KnowledgeError):
    """The index on disk cannot be loaded (damaged or partial): the last good one stays in use."""


class SharedIndexError(KnowledgeError):
    """A published index version that is missing, malformed or does not match its hashes."""


class FileRefused(ThreadbotException):
    """A file attached to a question that is not read: the message says why, after its name
    ("deploy.bin: not a text file"), and the answer names it."""


class ConfigInvalid(ThreadbotException):
    """`threadbot.toml` is not what threadbot reads: the message names the file, the line and
    the key, as the person fixing it needs."""


class EmbeddedServerBusy(ThreadbotException):
    """Another process already runs the embedded server on this data folder."""
