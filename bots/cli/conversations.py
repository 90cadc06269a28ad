"""`threadbot conversations`: what the bot remembers, listed, shown, exported or forgotten.

Also the privacy tool: `forget --user` forgets every conversation a person took part in, and
the records of what they asked and how they voted (`core.feedback.records`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

from langchain_core.messages import message_to_dict

from bots.lifecycle import ExitCode
from core import Pipeline, Settings, ThreadbotError, printable, sessions

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

SPEAKERS = {"human": "user", "ai": "bot", "system": "system"}


def expiry(ttl_s: int) -> str:
    """Time left before Redis forgets a history, as a person reads it."""
    if ttl_s < 0:
        return "never"
    days, rest = divmod(ttl_s, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"


def _show(session_id: str, messages: list[BaseMessage]) -> str:
    out = [f"{printable(session_id)}: {len(messages)} messages"]
    for message in messages:
        speaker = SPEAKERS.get(message.type, message.type)
        # Line by line: a stored control character is shown escaped, never run.
        first, *rest = [printable(line) for line in message.text.splitlines()] or [""]
        out.append(f"{speaker}> {first}")
        out += [f"{' ' * (len(speaker) + 2)}{line}" for line in rest]
    return "\n".join(out) + "\n"


async def _list(pipeline: Pipeline) -> int:
    found = await pipeline.conversations()
    if not found:
        sys.stdout.write("No stored conversations.\n")
        return ExitCode.OK
    width = max(len("session"), *(len(c.session_id) for c in found))
    sys.stdout.write(f"{'session':<{width}}  messages  expires in\n")
    for c in found:
        sys.stdout.write(
            f"{printable(c.session_id):<{width}}  {c.messages:8d}  {expiry(c.ttl_s)}\n"
        )
    sys.stdout.write(f"{len(found)} conversation{'' if len(found) == 1 else 's'}.\n")
    return ExitCode.OK


async def _messages(pipeline: Pipeline, session_id: str) -> list[BaseMessage] | None:
    messages = await pipeline.messages(session_id)
    if not messages:
        sys.stderr.write(f"threadbot: no conversation {printable(session_id)}\n")
        return None
    return messages


async def _forget_user(pipeline: Pipeline, user: str) -> int:
    forgotten = await pipeline.forget_user(user)
    n = len(forgotten)
    sys.stdout.write(
        f"Forgot {n} conversation{'' if n == 1 else 's'} {printable(user)} took part in"
    )
    sys.stdout.write(":\n" if forgotten else ".\n")
    sys.stdout.write("".join(f"  {printable(s)}\n" for s in forgotten))
    records = await pipeline.records.forget(user)
    sys.stdout.write(
        f"Removed {records} record{'' if records == 1 else 's'} of questions and votes by "
        f"{printable(user)}.\n"
    )
    return ExitCode.OK


async def run(settings: Settings, action: str, session_id: str | None, user: str | None) -> int:
    """One `conversations` action; 1 when the conversation asked for does not exist, 2 when
    the store cannot be reached."""
    async with await Pipeline.create(settings, join_running=True) as pipeline:
        try:
            if action == "list":
                return await _list(pipeline)
            if action == "forget" and user is not None:
                return await _forget_user(pipeline, user)
            assert session_id is not None  # the parser requires it for the other actions
            # As listed (`console:{ops}`), or as a person types it (`console:ops`).
            session_id = sessions.tagged(session_id)
            if action == "forget":
                forgot = await pipeline.reset(session_id)
                shown = printable(session_id)
                sys.stdout.write(
                    f"Forgot {shown}.\n" if forgot else f"Nothing to forget: no {shown}.\n"
                )
                return ExitCode.OK
            messages = await _messages(pipeline, session_id)
            if messages is None:
                return ExitCode.FAILED
            if action == "show":
                sys.stdout.write(_show(session_id, messages))
            else:
                dicts = [message_to_dict(m) for m in messages]
                document = {"session_id": session_id, "messages": dicts}
                sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
            return ExitCode.OK
        except ThreadbotError as exc:
            sys.stderr.write(f"threadbot: the conversation store does not answer ({exc})\n")
            return ExitCode.MISCONFIGURED


def main(settings: Settings, action: str, session_id: str | None, user: str | None) -> int:
    return asyncio.run(run(settings, action, session_id, user))
