"""Reading a Slack thread: whether the bot takes part in it, and its messages before a question.

One `conversations.replies` read, paged as Slack pages it (parent first, then replies oldest
first), serves both: the bot's messages say it is in the thread, the others' are the context a
question asked there is answered with.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from core import Earlier, Said

PAGE = 200  # Slack's advice for conversations.replies pages
MAX_PAGES = 5  # a thread longer than 1,000 messages is read from its start only


async def replies(
    client: AsyncWebClient, channel: str, thread_ts: str
) -> tuple[list[dict[str, Any]], bool]:
    """The thread's messages, oldest first, and whether it goes on past what was read."""
    messages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.conversations_replies(
            channel=channel, ts=thread_ts, limit=PAGE, cursor=cursor
        )
        messages += page.get("messages") or []
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not page.get("has_more") or cursor is None:
            return messages, False
    return messages, True


def written_by(message: dict[str, Any], me: Collection[str]) -> bool:
    return message.get("user") in me or message.get("bot_id") in me


def earlier(
    messages: list[dict[str, Any]], before_ts: str, me: Collection[str], at_most: int, more: bool
) -> Earlier:
    """The thread's first message and the newest others before the question, attributed."""
    before = [m for m in messages if _ts(m.get("ts")) < _ts(before_ts)]
    first, rest = before[:1], before[1:]
    kept = rest[-(at_most - 1) :] if at_most > 1 else []
    said = [_said(m, me) for m in [*first, *kept]]
    return Earlier([s for s in said if s.text], more or len(kept) < len(rest))


def _said(message: dict[str, Any], me: Collection[str]) -> Said:
    by_bot = written_by(message, me)
    if by_bot:
        author = "threadbot"
    elif message.get("user"):
        author = f"<@{message['user']}>"
    else:  # another app: its name, as Slack shows it
        profile = message.get("bot_profile") or {}
        author = str(message.get("username") or profile.get("name") or "an app")
    return Said(author, str(message.get("text") or "").strip(), by_bot)


def _ts(ts: object) -> tuple[int, int]:
    """A message timestamp, comparable ("1712345678.000100")."""
    seconds, _, micros = str(ts or "0").partition(".")
    return int(seconds or 0), int(micros or 0)
