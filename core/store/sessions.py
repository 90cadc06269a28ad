"""Session ids: one conversation each, always namespaced by tenant (team or guild).

The `{...}` in a session id is its Redis Cluster hash tag: the channel (or DM, or console
name). Every key of a session, and of the channel it belongs to, hashes to that one slot, so a
turn's save, a reset and a channel-wide reset are each one single-slot transaction.
"""

from __future__ import annotations


def slack_session(team: str, channel: str, thread_ts: str | None = None) -> str:
    """A thread (`thread_ts`, or the ts of the mention it opens), or a whole DM without one."""
    channel_id = f"slack:{{{team}:{channel}}}"
    return f"{channel_id}:{thread_ts}" if thread_ts else channel_id


def discord_session(guild: int | str | None, channel: int | str) -> str:
    """A Discord channel or thread (a thread is a channel); `guild=None` is a DM."""
    return f"discord:{{{guild}:{channel}}}" if guild is not None else f"discord:{{dm:{channel}}}"


def mcp_session(call: str) -> str:
    """One `ask` of an MCP client: a conversation of its own (nothing of another call's)."""
    return f"mcp:{{{call.replace('{', '(').replace('}', ')')}}}"


def console_session(name: str) -> str:
    return f"console:{{{name.replace('{', '(').replace('}', ')')}}}"


def levels(session_id: str) -> list[str]:
    """The session and the prefixes above it that a reset can name, outermost first:
    `slack:{T:C}` then `slack:{T:C}:ts`. The tag (or, in an id without one, the platform) is
    the outermost level: nothing wider is ever reset."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(session_id):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == ":" and depth == 0:
            parts.append(session_id[start:i])
            start = i + 1
    parts.append(session_id[start:])
    first = next((i for i, part in enumerate(parts) if part.startswith("{")), 0) + 1
    first = min(max(first, 2), len(parts))
    return [":".join(parts[:n]) for n in range(first, len(parts) + 1)]


def tagged(session_id: str) -> str:
    """The id a session had before ids carried their channel as a hash tag, as it is now:
    `slack:T:C:ts` is `slack:{T:C}:ts`. Ids already tagged, or of an unknown shape, are kept."""
    if "{" in session_id:
        return session_id
    platform, _, rest = session_id.partition(":")
    parts = rest.split(":")
    if platform == "slack" and len(parts) in (2, 3):
        return slack_session(*parts)
    if platform == "discord" and len(parts) == 2:
        guild, channel = parts
        return discord_session(None if guild == "dm" else guild, channel)
    if platform == "console" and rest:
        return console_session(rest)
    return session_id
