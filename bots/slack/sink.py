"""How one answer is shown in Slack: a placeholder edited in place, or Slack's native streaming.

The sinks only translate: slack_sdk's errors become the core's, and the core's streaming editor
owns the waiting, the coalescing and the splitting.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.mrkdwn import escape, message_args
from core import (
    MessageGone,
    MessageTooLong,
    NoAccess,
    Pacer,
    RateLimited,
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


class _SlackReply:
    """Where one reply goes in Slack, and how to tell its asker privately (ephemeral)."""

    placeholder: str | None = PLACEHOLDER
    preparing = None
    fallback: Any = None

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        user: str,
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._user = user
        self._pacer = pacer
        self._ticket: Ticket | None = None

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

    async def post(self, text: str) -> str:
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


class SlackStreamSink(_SlackReply):
    """Shows one reply with chat.startStream / appendStream / stopStream (an append sink).

    Slack wants the thread and the recipient's team and user; where it refuses to stream (a
    top-level DM, a token type, a plan), the reply falls back to `SlackSink`.
    """

    max_len = STREAM_MAX_LEN

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        team: str,
        user: str,
        *,
        pacer: Pacer | None = None,
    ) -> None:
        super().__init__(client, channel, thread_ts, user, pacer=pacer)
        self._team = team
        self.fallback = SlackSink(client, channel, thread_ts, user)  # after a refused start

    async def post(self, text: str) -> str:
        try:
            async with self._turn_to_post():
                response = await translated(
                    self._client.chat_startStream(
                        channel=self._channel,
                        thread_ts=self._thread_ts or "",
                        recipient_team_id=self._team,
                        recipient_user_id=self._user,
                        markdown_text=text,
                    )
                )
        except SlackApiError as exc:
            raise StreamRefused(str(exc.response.get("error"))) from exc
        return str(response["ts"])

    async def append(self, handle: str, text: str) -> None:
        await translated(
            self._client.chat_appendStream(channel=self._channel, ts=handle, markdown_text=text)
        )

    async def finish(self, handle: str, text: str) -> None:
        await translated(
            self._client.chat_stopStream(
                channel=self._channel, ts=handle, markdown_text=text or None
            )
        )


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
