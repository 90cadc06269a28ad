"""How one answer is shown in Slack: a placeholder edited in place, or Slack's native streaming.

Both translate slack_sdk's errors for the core's streaming editor, which owns the waiting and
the splitting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack_mrkdwn import message_args
from core.errors import MessageGone, MessageTooLong, RateLimited, ThreadbotError

log = logging.getLogger(__name__)

# Slack refuses chat.update text near 4,000 characters (msg_too_long); mrkdwn escaping can
# lengthen the text a little, so parts are cut well below that.
MAX_LEN = 3500
GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "channel_not_found"})


@dataclass(frozen=True)
class NativeTarget:
    """Where a native stream goes: Slack needs the thread and the recipient's team and user."""

    channel: str
    thread_ts: str
    team: str
    user: str


class SlackSink:
    """Shows one reply in a Slack thread: the placeholder becomes the first part, then new posts.

    Text arrives as Markdown and goes out as mrkdwn; a trailing sources line becomes a context
    block. Client errors are translated for the editor, which owns waiting and splitting.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str | None,
        *,
        placeholder_ts: str | None = None,
        max_len: int = MAX_LEN,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._placeholder_ts = placeholder_ts
        self._max_len = max_len

    @property
    def max_len(self) -> int:
        return self._max_len

    async def post(self, text: str) -> str:
        if self._placeholder_ts is not None:
            ts = self._placeholder_ts
            await self.edit(ts, text)  # on an error the placeholder stays for the retry
            self._placeholder_ts = None
            return ts
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


async def stream_natively(
    client: AsyncWebClient,
    where: NativeTarget,
    chunks: AsyncIterator[str],
    *,
    interval_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str] | None:
    """Stream with Slack's chat.startStream/appendStream/stopStream (slack_sdk's AsyncChatStream).

    Appends at most once per `interval_s`; a 429 holds appends back while the model keeps being
    read, so the next append carries everything (coalesced, never queued). Returns None when the
    answer was shown, or, when Slack refuses to start a stream, the answer so far followed by
    the rest of `chunks`, for the caller to show by editing instead.
    """
    stream = await client.chat_stream(
        channel=where.channel,
        thread_ts=where.thread_ts,
        recipient_team_id=where.team,
        recipient_user_id=where.user,
        buffer_size=1,  # we throttle ourselves; every append goes out at once
    )
    given = ""  # everything handed to the stream, kept to replay it if Slack refuses
    pending = ""
    next_at = float("-inf")
    try:
        async for chunk in chunks:
            pending += chunk
            if not pending or clock() < next_at:
                continue
            given, text, pending = given + pending, pending, ""
            next_at = clock() + interval_s
            try:
                await stream.append(markdown_text=text)  # a failed flush stays buffered
            except SlackApiError as exc:
                if exc.response.status_code == 429:
                    next_at = clock() + retry_after_s(exc)
                elif stream.ts is None:
                    log.info("native streaming refused (%s); editing", exc.response.get("error"))
                    return _replay(given, chunks)
                elif exc.response.get("error") in GONE_ERRORS:
                    log.info("streamed message deleted; stopping the answer")
                    return None
                else:
                    raise
    except ThreadbotError as exc:
        pending += f"\n\n⚠️ {exc.user_message}"
    given += pending
    for _ in range(3):
        try:
            await stream.stop(markdown_text=pending or None)
            return None
        except SlackApiError as exc:
            if exc.response.status_code != 429:
                if stream.ts is None:
                    return _replay(given, None)
                if exc.response.get("error") in GONE_ERRORS:
                    return None
                raise
            pending = ""  # kept in the stream's buffer for the next try
            await asyncio.sleep(retry_after_s(exc))
    raise RuntimeError("Slack kept rate limiting chat.stopStream")


async def _replay(text: str, rest: AsyncIterator[str] | None) -> AsyncIterator[str]:
    if text:
        yield text
    if rest is not None:
        async for chunk in rest:
            yield chunk
