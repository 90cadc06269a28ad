"""Session ids: one conversation each, always namespaced by tenant (team or guild)."""

from __future__ import annotations


def slack_session(team: str, channel: str, thread_ts: str | None = None) -> str:
    """A thread (`thread_ts`, or the ts of the mention it opens), or a whole DM without one."""
    return f"slack:{team}:{channel}:{thread_ts}" if thread_ts else f"slack:{team}:{channel}"


def discord_session(guild: int | str | None, channel: int | str) -> str:
    """A Discord channel or thread (a thread is a channel); `guild=None` is a DM."""
    return f"discord:{guild}:{channel}" if guild is not None else f"discord:dm:{channel}"


def console_session(name: str) -> str:
    return f"console:{name}"
