"""How one answer is shown in Discord: channel messages or an interaction's response.

The sinks translate discord.py's errors for the core's streaming editor, which owns the waiting
and the splitting; a 429 on a sink's request reaches the editor instead of being slept on.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

import aiohttp
import discord

from bots.discord.feedback import call_a_human, show_buttons
from core import Answered, MessageGone, MessageTooLong, NoAccess, Preparing, RateLimited

log = logging.getLogger(__name__)

DISCORD_MAX_CHARS = 2_000  # message content; Discord refuses longer with 400 (code 50035)
# The margin covers counting differences (Discord counts some emoji as more than one character).
SINK_MAX_LEN = DISCORD_MAX_CHARS - 50
NO_MENTIONS = discord.AllowedMentions.none()
# https://discord.com/developers/docs/topics/opcodes-and-status-codes#json
INVALID_FORM_BODY = 50035

# Set while a sink sends, so a 429 is raised to the streaming editor instead of slept on.
_SURFACE_RATE_LIMITS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "threadbot_surface_rate_limits", default=False
)


def rate_limit_trace() -> aiohttp.TraceConfig:
    """An aiohttp hook that turns a route's 429 into `discord.RateLimited` while a sink is sending.

    discord.py sleeps on a 429 and then resends the request it had, holding that edit's old text
    (it raises only when the wait exceeds `max_ratelimit_timeout`, which it floors at 30 s). The
    streaming editor waits better: it keeps reading the answer and sends the newest text once.
    Other requests (command sync, typing) keep discord.py's own handling, and so do global rate
    limits: discord.py then holds every request behind its global gate, which it only sets when
    it sees the 429 itself.
    """

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: Any,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        if response.status != 429 or not _SURFACE_RATE_LIMITS.get():
            return
        try:
            body = await response.json(content_type=None)
        except (ValueError, aiohttp.ClientError):
            body = None
        if _is_global(response.headers, body):
            return
        try:
            retry_after = float(body["retry_after"])
        except (ValueError, KeyError, TypeError):
            retry_after = float(response.headers.get("Retry-After", "1"))
        raise discord.RateLimited(retry_after)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


def _is_global(headers: Mapping[str, str], body: object) -> bool:
    """Is a 429 the global limit (all of the bot's requests) rather than one route's?"""
    # https://discord.com/developers/docs/topics/rate-limits#header-format
    return (
        headers.get("X-RateLimit-Global", "").lower() == "true"
        or headers.get("X-RateLimit-Scope", "").lower() == "global"
        or (isinstance(body, dict) and body.get("global") is True)
    )


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    """Turn discord.py's errors into the ones the streaming editor handles."""
    token = _SURFACE_RATE_LIMITS.set(True)
    try:
        yield
    except discord.RateLimited as exc:
        raise RateLimited(exc.retry_after) from exc
    except discord.NotFound as exc:  # Unknown Message (deleted) or Unknown Channel
        raise MessageGone(str(exc)) from exc
    except discord.Forbidden as exc:
        raise NoAccess(str(exc)) from exc
    except discord.HTTPException as exc:
        if exc.code == INVALID_FORM_BODY and "content" in exc.text:
            raise MessageTooLong(exc.text) from exc
        raise
    finally:
        _SURFACE_RATE_LIMITS.reset(token)


Editable = (
    discord.Message | discord.PartialMessage | discord.InteractionMessage | discord.WebhookMessage
)


class DiscordSinkBase:
    """Posting and editing with discord.py's errors translated; subclasses say where to post."""

    max_len = SINK_MAX_LEN
    placeholder: str | None = None
    preparing: Preparing | None = None
    fallback = None
    role: int | None = None  # who "needs a human" pings (ESCALATE_DISCORD_ROLE)
    _answered: Answered | None = None

    async def notify(self, text: str) -> None:
        raise NotImplementedError

    def rating(self, answered: Answered) -> None:
        self._answered = answered

    async def ask_feedback(self, handle: Editable, text: str) -> None:
        """👍/👎 under the final text (which is not sent again)."""
        if self._answered is not None:
            with _translated_errors():
                await show_buttons(handle, self._answered.id)

    async def call_a_human(self, text: str) -> bool:
        return await call_a_human(await self._home(), self.role, text)

    async def _home(self) -> object:
        """Where the reply is: the channel or thread a call for a person goes to."""
        raise NotImplementedError

    def begin(self) -> None:
        """discord.py paces each route itself."""

    def end(self) -> None:
        pass

    async def post(self, text: str) -> Editable:
        with _translated_errors():
            return await self._send(text)

    async def edit(self, handle: Editable, text: str) -> None:
        with _translated_errors():
            await handle.edit(content=text, allowed_mentions=NO_MENTIONS)

    async def _send(self, text: str) -> Editable:
        raise NotImplementedError


class DiscordSink(DiscordSinkBase):
    """Shows one reply in a channel: the first message replies to the question, pinging nobody."""

    def __init__(
        self, channel: discord.abc.Messageable, question: discord.Message | None = None
    ) -> None:
        self._channel = channel
        self._question = question
        self.preparing = channel.typing  # "typing…" until the first text

    async def notify(self, text: str) -> None:
        # Outside an interaction Discord has no message that only the asker sees.
        log.info("not shown in the channel (Discord has no private notice here): %s", text)

    @property
    def where(self) -> dict[str, Any]:
        """What another process needs to finish this reply after a crash."""
        return {
            "platform": "discord",
            "channel_id": str(getattr(self._channel, "id", "")),
            "question_id": str(self._question.id) if self._question is not None else None,
        }

    def ref(self, handle: Editable) -> str:
        return str(handle.id)

    async def _home(self) -> object:
        return self._channel

    def resume(self, ref: str) -> discord.PartialMessage:
        return self._channel.get_partial_message(int(ref))  # type: ignore[attr-defined,no-any-return]

    async def _send(self, text: str) -> Editable:
        if self._question is None:
            return await self._channel.send(text, allowed_mentions=NO_MENTIONS)
        reference = self._question.to_reference(fail_if_not_exists=False)
        self._question = None  # later parts of a long answer follow without a reply arrow
        return await self._channel.send(text, reference=reference, allowed_mentions=NO_MENTIONS)


THREAD_EXISTS = 160004  # "A thread has already been created for this message"
ARCHIVE_AFTER_MIN: Literal[1440] = 1440  # a day without messages


class NewThreadSink(DiscordSinkBase):
    """Shows one reply in a thread it starts from the question (a `thread` channel): the
    thread is made when the answer begins, and the conversation is that thread."""

    def __init__(self, question: discord.Message, name: str) -> None:
        self._question = question
        self._name = name
        self._thread: discord.Thread | None = None
        self.preparing = self._typing_in_thread

    async def notify(self, text: str) -> None:
        log.info("not shown in the channel (Discord has no private notice here): %s", text)

    async def thread(self) -> discord.Thread:
        if self._thread is None:
            with _translated_errors():
                try:
                    self._thread = await self._question.create_thread(
                        name=self._name, auto_archive_duration=ARCHIVE_AFTER_MIN
                    )
                except discord.HTTPException as exc:
                    if exc.code != THREAD_EXISTS:
                        raise
                    found = await self._question.guild.fetch_channel(self._question.id)  # type: ignore[union-attr]
                    assert isinstance(found, discord.Thread)
                    self._thread = found
        return self._thread

    @contextlib.asynccontextmanager
    async def _typing_in_thread(self) -> AsyncIterator[None]:
        async with (await self.thread()).typing():
            yield

    async def _send(self, text: str) -> Editable:
        return await (await self.thread()).send(text, allowed_mentions=NO_MENTIONS)

    async def _home(self) -> object:
        return await self.thread()


class InteractionSink(DiscordSinkBase):
    """Shows one reply to a deferred slash command: the original response, then follow-ups."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self._interaction = interaction
        self._original_used = False

    async def _home(self) -> object:
        return self._interaction.channel

    async def notify(self, text: str) -> None:
        with _translated_errors():
            if self._interaction.response.is_done():
                await self._interaction.followup.send(text, ephemeral=True)
            else:
                await self._interaction.response.send_message(text, ephemeral=True)

    async def _send(self, text: str) -> Editable:
        if not self._original_used:
            original = await self._interaction.edit_original_response(
                content=text, allowed_mentions=NO_MENTIONS
            )
            self._original_used = True
            return original
        return await self._interaction.followup.send(text, wait=True, allowed_mentions=NO_MENTIONS)
