"""How one answer is shown in Slack: a placeholder edited in place, or Slack's native streaming.

The sinks only translate: slack_sdk's errors become the core's, and the core's streaming editor
owns the waiting, the coalescing and the splitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.feedback import FeedbackBlocks, call_a_human
from bots.slack.mrkdwn import escape, message_args
from core import (
    Answered,
    MessageGone,
    MessageTooLong,
    NoAccess,
    Pacer,
    Preparing,
    RateLimited,
    Step,
    StreamEnded,
    StreamRefused,
    Ticket,
)

log = logging.getLogger(__name__)

PLACEHOLDER = "…"
# Slack refuses chat.update text near 4,000 characters (msg_too_long); mrkdwn escaping can
# lengthen the text a little, so parts are cut well below that.
MAX_LEN = 3500
# A native stream's text is Markdown, up to 12,000 characters (a `markdown` block's limit).
STREAM_MAX_LEN = 12_000
GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "channel_not_found"})
NO_ACCESS_ERRORS = frozenset({"not_in_channel", "is_archived", "restricted_action"})
STREAM_ENDED = "message_not_in_streaming_state"
# Errors that say Slack will not show a thread status for this app at all: stop asking (any
# other error, a 429 or one thread's, costs only that reply its status).
NEVER_ERRORS = frozenset(
    {
        "missing_scope",
        "not_allowed_token_type",
        "not_allowed",
        "unknown_method",
        "method_deprecated",
        "feature_not_enabled",
        "team_access_not_granted",
    }
)
# Slack stops a stream after about five minutes; one older than this is ended first, by us.
STREAM_LIFETIME_S = 270.0
# The thread's status line until the first text ("threadbot is thinking…"), rotating these.
STATUS = "is thinking…"
LOADING_MESSAGES = ("Searching the docs…", "Writing the answer…")


def loading_messages(*, thread: bool, files: bool) -> tuple[str, ...]:
    """The status's rotating steps: what this answer will do before its first text."""
    first = (("Reading the thread…",) if thread else ()) + (
        ("Reading the files…",) if files else ()
    )
    return first + LOADING_MESSAGES


STATUS_RENEW_S = 100.0  # Slack drops a status after two minutes without a message
BUTTONS_WAIT_S = 30.0  # at most, for a rate limit on the edit that adds the feedback buttons


_BACKGROUND: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak refs)


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


class WorkingStatus:
    """`assistant.threads.setStatus` for the replies of one bot. Once Slack refuses it (a
    missing scope, a workspace without it) the bot stops asking, and replies post the
    placeholder instead."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self.refused: str | None = None

    @contextlib.asynccontextmanager
    async def showing(
        self, channel: str, thread_ts: str, loading: tuple[str, ...] = LOADING_MESSAGES
    ) -> AsyncIterator[None]:
        """Shown on entering (raises when Slack refuses), renewed until the block ends; the
        first message the bot posts in the thread clears it."""
        await self._set(channel, thread_ts, loading)
        renewing = asyncio.create_task(self._renew(channel, thread_ts, loading))
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _set(self, channel: str, thread_ts: str, loading: tuple[str, ...]) -> None:
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=channel,
                thread_ts=thread_ts,
                status=STATUS,
                loading_messages=list(loading),
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            if self.refused is None and error in NEVER_ERRORS:  # Slack will not do it here
                self.refused = error
                log.info("Slack refused a thread status (%s): posting a placeholder", error)
            raise

    async def clear(self, channel: str, thread_ts: str) -> None:
        await self._client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread_ts, status=""
        )

    async def _renew(self, channel: str, thread_ts: str, loading: tuple[str, ...]) -> None:
        while True:
            await asyncio.sleep(STATUS_RENEW_S)
            with contextlib.suppress(Exception):  # cosmetic: the placeholder-less wait goes on
                await self._set(channel, thread_ts, loading)


class _SlackReply:
    """Where one reply goes in Slack, and how to tell its asker privately (ephemeral).

    With a `status`, a reply in a thread shows "is thinking…" until its first text, and posts
    the placeholder only where Slack refuses the status.
    """

    placeholder: str | None = PLACEHOLDER
    fallback: Any = None

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        user: str,
        *,
        pacer: Pacer | None = None,
        status: WorkingStatus | None = None,
        loading: tuple[str, ...] = LOADING_MESSAGES,
        buttons: FeedbackBlocks | None = None,
        usergroup: str | None = None,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._user = user
        self._pacer = pacer
        self._ticket: Ticket | None = None
        self._status = status
        self._loading = loading
        self._buttons = buttons  # 👍/👎 under the final answer (None: none)
        self._usergroup = usergroup  # who "needs a human" pings
        self._answered: Answered | None = None

    def rating(self, answered: Answered) -> None:
        """The answer's id, for the buttons under it once it is final and recorded."""
        if self._buttons is not None:
            self._answered = answered

    async def call_a_human(self, text: str) -> bool:
        return await call_a_human(
            self._client, self._channel, self._thread_ts, self._usergroup, text
        )

    @property
    def preparing(self) -> Preparing | None:
        if self._status is None or self._status.refused or self._thread_ts is None:
            return None
        return self._showing_status

    @contextlib.asynccontextmanager
    async def _showing_status(self) -> AsyncIterator[None]:
        assert self._status is not None and self._thread_ts is not None
        async with self._status.showing(self._channel, self._thread_ts, self._loading):
            # The status shows the wait: the reply's first message takes its place in the
            # channel's line when its text comes, rather than hold up the replies behind it.
            if self._ticket is not None:
                self._ticket.release()
                self._ticket = None
            try:
                yield
            except BaseException:
                # The reply ended before any text (failed, taken over, stopped): the status
                # would otherwise say "thinking" for two more minutes.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._status.clear(self._channel, self._thread_ts), 2)
                raise

    def begin(self) -> None:
        # The reply's place in the channel's line of new messages, as its turn starts.
        if self._pacer is not None:
            self._ticket = self._pacer.ticket(self._channel)

    def end(self) -> None:
        if self._ticket is not None:
            self._ticket.release()

    def _turn_to_post(self) -> AbstractAsyncContextManager[None]:
        """Wait for this reply's turn to start a new message in the channel."""
        ticket, self._ticket = self._ticket, None
        if ticket is None and self._pacer is not None:
            ticket = self._pacer.ticket(self._channel)  # a later part: at the end of the line
        return ticket if ticket is not None else contextlib.nullcontext()

    async def notify(self, text: str) -> None:
        await translated(
            self._client.chat_postEphemeral(
                channel=self._channel, user=self._user, thread_ts=self._thread_ts, text=escape(text)
            )
        )


class SlackSink(_SlackReply):
    """Shows one reply in a thread (or at the top of a DM) by posting and editing.

    Text arrives as Markdown and goes out as mrkdwn; a trailing sources line becomes a context
    block. New messages are paced per channel (`pacer`); a reply a crash interrupted can be
    finished in place by another process (`where`, `ref`, `resume`).
    """

    max_len = MAX_LEN

    @property
    def where(self) -> dict[str, Any]:
        return {
            "platform": "slack",
            "channel": self._channel,
            "thread_ts": self._thread_ts,
            "user": self._user,
        }

    def ref(self, handle: str) -> str:
        return handle

    def resume(self, ref: str) -> str:
        return ref

    _adopted: str | None = None

    def adopt(self, ts: str) -> None:
        """Take the bot's message `ts` (a native stream that ended before its first text) as
        this reply's first message: the next post edits it rather than post a new one."""
        self._adopted = ts

    async def post(self, text: str) -> str:
        if self._adopted is not None:
            ts, self._adopted = self._adopted, None
            await self.edit(ts, text)
            return ts
        async with self._turn_to_post():
            response = await translated(
                self._client.chat_postMessage(
                    channel=self._channel, thread_ts=self._thread_ts, **message_args(text)
                )
            )
        return str(response["ts"])

    async def edit(self, handle: str, text: str) -> None:
        await translated(
            self._client.chat_update(channel=self._channel, ts=handle, **message_args(text))
        )

    async def ask_feedback(self, handle: str, text: str) -> None:
        """The final text again, now with the buttons under it (blocks replace the text); a
        rate limit right after the final edit is waited out once."""
        if self._answered is None or self._buttons is None:
            return
        for attempt in (1, 2):
            try:
                await self._with_buttons(handle, text, self._buttons, self._answered.id)
                return
            except RateLimited as exc:
                if attempt == 2:
                    raise
                await asyncio.sleep(min(exc.retry_after_s, BUTTONS_WAIT_S))

    async def _with_buttons(
        self, handle: str, text: str, buttons: FeedbackBlocks, answer: str
    ) -> None:
        update = self._client.chat_update
        try:
            await translated(
                update(channel=self._channel, ts=handle, **buttons.with_buttons(text, answer))
            )
        except SlackApiError as exc:
            if not buttons.refusal(exc):
                raise
            await translated(
                update(channel=self._channel, ts=handle, **buttons.with_buttons(text, answer))
            )


class SlackStreamSink(_SlackReply):
    """Shows one reply with chat.startStream / appendStream / stopStream (an append sink).

    Slack wants the thread and the recipient's team and user; where it refuses to stream (a
    top-level DM, a token type, a plan), the reply falls back to `SlackSink`.
    """

    max_len = STREAM_MAX_LEN

    lifetime_s = STREAM_LIFETIME_S

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        team: str,
        user: str,
        *,
        pacer: Pacer | None = None,
        status: WorkingStatus | None = None,
        loading: tuple[str, ...] = LOADING_MESSAGES,
        buttons: FeedbackBlocks | None = None,
        usergroup: str | None = None,
    ) -> None:
        super().__init__(
            client, channel, thread_ts, user, pacer=pacer, status=status, loading=loading,
            buttons=buttons, usergroup=usergroup,
        )  # fmt: skip
        self._team = team
        # After a refused start, and to finish a stream Slack ended, by editing.
        self.fallback = SlackSink(client, channel, thread_ts, user, buttons=buttons)
        self._carried = False  # the buttons went out with chat.stopStream
        self._stream: str | None = None  # started by a step, before the first text
        self._texted = False  # the first text was posted
        self._open: set[str] = set()  # streams started and not yet stopped
        self._started_at = 0.0
        self._refused: StreamRefused | None = None

    async def step(self, step: Step) -> None:
        """A `task_update` chunk: it starts the stream when it is the answer's first sign."""
        chunk: dict[str, Any] = {
            "type": "task_update",
            "id": step.id,
            "title": step.title,
            "status": step.status,
        }
        if step.output:
            chunk["output"] = step.output
        if self._refused is not None or self._texted:
            return  # steps come before the first text; after it they have nothing to add
        if self._stream is None:
            try:
                self._stream = await self._start(chunks=[chunk])
            except StreamRefused as exc:
                self._refused = exc  # the first text goes to the fallback
            return
        await translated(
            self._client.chat_appendStream(channel=self._channel, ts=self._stream, chunks=[chunk])
        )

    async def post(self, text: str) -> str:
        if self._refused is not None:
            raise self._refused
        self._texted = True
        if self._stream is not None:  # started by a step: the reply's first message only
            stream, self._stream = self._stream, None
            try:
                await self.append(stream, text)
            except (SlackApiError, StreamEnded) as exc:
                # The stream takes no text (Slack ended it, or refuses it): the answer is
                # shown by editing that message instead.
                if not isinstance(exc, StreamEnded):
                    with contextlib.suppress(SlackApiError):
                        await self._client.chat_stopStream(channel=self._channel, ts=stream)
                self.fallback.adopt(stream)
                raise StreamRefused(str(exc)) from exc
            return stream
        return await self._start(markdown_text=text)

    async def _start(self, **content: Any) -> str:
        try:
            async with self._turn_to_post():
                response = await translated(
                    self._client.chat_startStream(
                        channel=self._channel,
                        thread_ts=self._thread_ts or "",
                        recipient_team_id=self._team,
                        recipient_user_id=self._user,
                        **content,
                    )
                )
        except SlackApiError as exc:
            raise StreamRefused(str(exc.response.get("error"))) from exc
        self._started_at = time.monotonic()
        ts = str(response["ts"])
        self._open.add(ts)
        return ts

    async def append(self, handle: str, text: str) -> None:
        try:
            await self._append(handle, text)
        except StreamEnded:
            self._open.discard(handle)  # Slack's, or stopped here: over either way
            raise

    async def _append(self, handle: str, text: str) -> None:
        if time.monotonic() - self._started_at > self.lifetime_s:
            # Before Slack ends it mid-call: stopped here, the reply goes on by editing.
            with contextlib.suppress(SlackApiError):
                await self._client.chat_stopStream(channel=self._channel, ts=handle)
            raise StreamEnded(f"stream older than {self.lifetime_s:.0f}s")
        await translated(
            self._client.chat_appendStream(channel=self._channel, ts=handle, markdown_text=text)
        )

    def rating(self, answered: Answered) -> None:
        super().rating(answered)
        self.fallback.rating(answered)

    async def finish(self, handle: str, text: str) -> None:
        """The stream's last text; the buttons go with it (Slack renders a stopStream's blocks
        under the message) once the answer is recorded."""
        answered, buttons = self._answered, self._buttons
        with_buttons = answered is not None and answered.saved and buttons is not None
        try:
            await self._stop(handle, text, with_buttons=with_buttons)
        except SlackApiError as exc:
            if not (with_buttons and buttons is not None and buttons.refusal(exc)):
                raise
            await self._stop(handle, text, with_buttons=True)
        self._carried = with_buttons
        self._open.discard(handle)

    async def _stop(self, handle: str, text: str, *, with_buttons: bool) -> None:
        extra: dict[str, Any] = {}
        if with_buttons and self._buttons is not None and self._answered is not None:
            extra["blocks"] = [self._buttons.buttons(self._answered.id)]
        await translated(
            self._client.chat_stopStream(
                channel=self._channel, ts=handle, markdown_text=text or None, **extra
            )
        )

    async def ask_feedback(self, handle: str, text: str) -> None:
        """Nothing to add: the buttons went out with the stream's end (`finish`)."""
        if not self._carried:
            log.info("answer %s ended without its buttons", getattr(self._answered, "id", ""))

    def end(self) -> None:
        """No stream is left open: one the reply did not finish (it failed, was taken over,
        or a step started it and no text came) is stopped, in the background."""
        super().end()
        for ts in self._open:
            _in_background(self._stop_quietly(ts))
        self._open.clear()

    async def _stop_quietly(self, ts: str) -> None:
        with contextlib.suppress(Exception):
            await self._client.chat_stopStream(channel=self._channel, ts=ts)


class SlashResponse:
    """A slash command's answer: the text of its ack, which only the caller sees."""

    placeholder = preparing = fallback = None
    max_len = MAX_LEN

    def __init__(self, ack: Any) -> None:
        self._ack = ack

    async def notify(self, text: str) -> None:
        await self._ack(text=text)

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    async def post(self, text: str) -> None:
        await self.notify(text)

    async def edit(self, handle: None, text: str) -> None:
        """An ack is sent once and cannot be changed: to the editor, the message is gone."""
        raise MessageGone("a slash command's reply cannot be edited")


async def translated(call: Coroutine[Any, Any, Any]) -> Any:
    """Await a Web API call, turning Slack's errors into the ones the streaming editor handles."""
    try:
        return await call
    except SlackApiError as exc:
        if exc.response.status_code == 429:
            raise RateLimited(retry_after_s(exc)) from exc
        error = exc.response.get("error")
        if error == STREAM_ENDED:
            raise StreamEnded(error) from exc
        if error == "msg_too_long":
            raise MessageTooLong(error) from exc
        if error in GONE_ERRORS:
            raise MessageGone(error) from exc
        if error in NO_ACCESS_ERRORS:
            raise NoAccess(error) from exc
        raise


def retry_after_s(exc: SlackApiError) -> float:
    """Slack's Retry-After header in seconds (1 when missing or unreadable)."""
    for key, value in (exc.response.headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(float(value if isinstance(value, str) else value[0]), 0.0)
            except (TypeError, ValueError, IndexError):
                break
    return 1.0
