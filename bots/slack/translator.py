"""Slack events in, turns out: the pure translation, tested against recorded payloads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core import (
    NO_POLICIES,
    Policies,
    ReplyModes,
    Turn,
    Where,
    reply_mode_for,
    sessions,
    worth_answering,
)

RESET_WORDS = frozenset({"reset", "reset conversation", "forget", "forget this"})
# Subtypes that are still a person writing; edits, deletions, joins and bots are not.
HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
NO_MODES = ReplyModes({})


@dataclass(frozen=True)
class SlackPlace:
    """Where in Slack a turn was asked, and where its reply goes."""

    team: str
    channel: str
    ts: str
    thread_ts: str | None  # where the reply goes; None for the top level of a DM
    is_dm: bool
    mentioned: bool
    files: tuple[dict[str, Any], ...] = ()
    auto: bool = False  # answered unasked: a top-level message of an auto-reply channel

    @property
    def earlier_in_thread(self) -> bool:
        """Asked inside a thread that was there before: its earlier messages are context."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def where(self) -> Where:
        """The place as the configuration file names it (a thread counts as its channel)."""
        return Where("slack", self.team, channel=self.channel, dm=self.is_dm)

    @property
    def needs_thread_check(self) -> bool:
        """An unaddressed thread reply: answered only where the bot already takes part."""
        return not self.mentioned and not self.is_dm and not self.auto


def turn_from_slack(
    body: dict[str, Any],
    bot_user_id: str,
    *,
    retried: bool = False,
    modes: ReplyModes = NO_MODES,
    policies: Policies = NO_POLICIES,
) -> tuple[Turn, SlackPlace] | None:
    """Translate an Events API envelope into a turn, or None for what the bot must ignore.

    Ignored: bots (itself included), edits, deletions and other non-human subtypes, top-level
    channel messages without a mention (but in an `auto` channel, where each one that is worth
    answering opens a thread), and channel `message` events that mention the bot (the
    `app_mention` event for the same message is the one answered). A channel's mode is the
    configuration file's there (`policies`), else the settings' (`modes`).
    """
    event = body.get("event") or {}
    kind = event.get("type")
    user = event.get("user")
    if kind not in ("app_mention", "message") or not user or user == bot_user_id:
        return None
    if (
        event.get("bot_id")
        or event.get("bot_profile")
        or event.get("subtype") not in HUMAN_SUBTYPES
    ):
        return None
    team = str(body.get("team_id") or event.get("team") or "")
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    raw = str(event.get("text") or "")
    mentioned = bool(bot_user_id) and any(m == bot_user_id for m in _MENTION.findall(raw))
    text = _MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), raw).strip()
    files = tuple(f for f in event.get("files") or () if isinstance(f, dict))
    if not team or not channel or not ts or not (text or files):
        return None
    thread_ts = event.get("thread_ts")
    is_dm = event.get("channel_type") == "im" or (kind == "message" and channel.startswith("D"))
    auto = False
    if kind == "app_mention":
        reply_ts = thread_ts or ts  # a mention at the top opens a thread under itself
    elif is_dm:
        reply_ts = thread_ts  # a top-level DM is one conversation, answered at the top
    elif thread_ts and thread_ts != ts and not mentioned:
        if not files and not worth_answering(text):
            return None  # "thanks!" to the bot's answer, in a thread it follows
        reply_ts = thread_ts
    elif not thread_ts and not mentioned and _mode(policies, team, channel, modes) == "auto":
        if not files and not worth_answering(text):
            return None
        reply_ts, auto = ts, True  # an auto-reply channel: each message opens a thread
    else:
        return None
    place = SlackPlace(team, channel, ts, reply_ts, is_dm, mentioned, files, auto)
    is_reset = text.lower().strip(" .!") in RESET_WORDS and (mentioned or is_dm)
    event_id = body.get("event_id")
    turn = Turn(
        platform="slack",
        session_id=sessions.slack_session(team, channel, reply_ts),
        question=text,
        user=str(user),
        place=place_words(reply_ts, is_dm),
        event_key=f"slack:{event_id}" if event_id else None,
        retried=retried,
        action="reset" if is_reset else "answer",
        workspace=team,
        channel=channel,
        dm=is_dm,
    )
    return turn, place


def _mode(policies: Policies, team: str, channel: str, modes: ReplyModes) -> str:
    return reply_mode_for(policies, Where("slack", team, channel=channel), modes.of(channel))


def place_words(thread_ts: str | None, is_dm: bool) -> str:
    if thread_ts:
        return "in this thread"
    return "in this DM" if is_dm else "in this channel"
