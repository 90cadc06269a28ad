"""`threadbot.toml`: read, checked with errors that name the file, the line and the key, and
read again when it changes.

    [defaults]                       # everywhere, unless a more precise table says otherwise
    knowledge_bases = ["default"]

    [knowledge_bases.hr]
    private = true                   # answers only where a channel (or DMs) maps it

    [slack.T0123TEAM]                # a Slack workspace (a Discord guild: [discord.GUILD_ID])
    knowledge_bases = ["default", "eng"]
    answers = false                  # nowhere in the workspace but where a table says true

    [slack.T0123TEAM.channels.C0456HR]
    knowledge_bases = ["hr"]
    prompt = "Point to the HR portal for forms."   # the team's instructions for the place
    chat_model = "gpt-4o"                          # its model (CHAT_MODEL elsewhere)
    reply_mode = "auto"              # every message (mention; forum and thread on Discord)
    answers = true
    allowed_groups = ["S0HRTEAM"]    # and allowed_users = [...]: who may ask here

    [slack.T0123TEAM.dm]             # direct messages with the bot ([discord.dm] on Discord)
    knowledge_bases = ["default"]
    answers = true                   # SLACK_ALLOW_DMS (DISCORD_ALLOW_DMS) for these DMs

    [mcp]                            # `threadbot mcp`: a place of its own, its table its own
    knowledge_bases = ["default", "hr"]   # hr exposed to MCP clients only because this names it
    prompt = "Answer for engineers."
    chat_model = "gpt-4o"

Discord guilds also take `[discord.GUILD.categories.CATEGORY_ID]`; a thread counts as its
parent channel. Where the file sets none of a key, the settings say (`core.policy.answering`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigInvalid
from core.settings import BASE_NAME, DEFAULT_BASE, PLATFORM_MODES, ReplyMode

log = logging.getLogger(__name__)

RELOAD_CHECK_S = 2.0  # how often the file's modification time is looked at, at most
_LAYER_KEYS = frozenset(
    {
        "knowledge_bases", "prompt", "chat_model",
        "reply_mode", "allowed_users", "allowed_groups", "answers",
    }
)  # fmt: skip
PROMPT_MAX_CHARS = 4000
_BASE_KEYS = frozenset({"private"})
_PLATFORMS = ("slack", "discord")
_NESTED = {"channels", "categories", "dm"}
MCP = ("mcp",)  # the MCP server's table: one place, no workspaces or channels under it
_MCP_KEYS = frozenset({"knowledge_bases", "prompt", "chat_model"})


@dataclass(frozen=True)
class Layer:
    """One table's settings; None: not set there (a wider table's value holds)."""

    knowledge_bases: tuple[str, ...] | None = None
    prompt: str | None = None  # the operator's instructions for the place, after the rules
    chat_model: str | None = None
    reply_mode: ReplyMode | None = None
    allowed_users: tuple[str, ...] | None = None
    allowed_groups: tuple[str, ...] | None = None  # Slack user groups, Discord roles
    answers: bool | None = None  # whether the bot answers at the place at all


@dataclass(frozen=True)
class Policies:
    """The whole file, checked: the layers by place, and the bases marked private."""

    defaults: Layer = field(default_factory=Layer)
    # (platform, workspace) -> layer; (platform, workspace, kind, id) for channels, categories
    # and ("dm",) — the key a place is looked up by; ("mcp",) for the MCP server's table.
    layers: Mapping[tuple[str, ...], Layer] = field(default_factory=dict)
    private: frozenset[str] = frozenset()

    @property
    def bases(self) -> frozenset[str]:
        """Every knowledge base the file names, and the default one."""
        named = {
            b
            for layer in (self.defaults, *self.layers.values())
            for b in layer.knowledge_bases or ()
        }
        return frozenset({DEFAULT_BASE, *named, *self.private})


NO_POLICIES = Policies()


def parse(path: Path) -> Policies:
    """The file at `path`, checked; raises `ConfigInvalid` naming the line and key at fault."""
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(f"{path}: {exc}") from exc
    where = _Locator(path, text)
    defaults = _layer(data.pop("defaults", {}), ("defaults",), where)
    private = set()
    for name, table in _table(data.pop("knowledge_bases", {}), ("knowledge_bases",), where).items():
        _check_base(name, ("knowledge_bases", name), where)
        table = _table(table, ("knowledge_bases", name), where)
        for key, value in table.items():
            if key not in _BASE_KEYS:
                raise where.error(("knowledge_bases", name), key, "is not a setting of a base")
            if not isinstance(value, bool):
                raise where.error(("knowledge_bases", name), key, "must be true or false")
        if table.get("private"):
            private.add(name)
    layers: dict[tuple[str, ...], Layer] = {}
    for platform in _PLATFORMS:
        for workspace, table in _table(data.pop(platform, {}), (platform,), where).items():
            at: tuple[str, ...] = (platform, workspace)
            table = dict(_table(table, at, where))
            nested = {k: table.pop(k) for k in list(table) if k in _NESTED}
            if workspace == "dm":  # [discord.dm]: DMs are no guild's
                layers[(platform, "dm")] = _layer(table, at, where)
                continue
            layers[at] = _layer(table, at, where)
            for kind, value in nested.items():
                if kind == "dm":
                    layers[(*at, "dm")] = _layer(value, (*at, "dm"), where)
                    continue
                for channel, inner in _table(value, (*at, kind), where).items():
                    layers[(*at, kind, channel)] = _layer(inner, (*at, kind, channel), where)
    if "mcp" in data:
        layers[MCP] = _mcp_layer(data.pop("mcp"), where)
    for unknown in data:
        raise where.error(
            (),
            unknown,
            "is not a table threadbot reads (defaults, knowledge_bases, slack, discord, mcp)",
        )
    policies = Policies(defaults, layers, frozenset(private))
    placed: list[tuple[tuple[str, ...], Layer]] = [(("defaults",), defaults), *layers.items()]
    for place, layer in placed:
        for base in layer.knowledge_bases or ():
            _check_base(base, place, where)
    return policies


def _table(value: object, at: tuple[str, ...], where: _Locator) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(at[:-1], at[-1] if at else "", "must be a table")
    return value


def _mcp_layer(table: object, where: _Locator) -> Layer:
    """`[mcp]`: which bases the MCP server exposes, with which instructions and model. Reply
    modes and allow lists are the chat platforms' (the server's callers hold its token)."""
    table = _table(table, MCP, where)
    for key in table:
        if key not in _MCP_KEYS:
            raise where.error(
                MCP, key, f"is not a setting of the MCP server ({', '.join(sorted(_MCP_KEYS))})"
            )
    return _layer(table, MCP, where)


def _layer(table: object, at: tuple[str, ...], where: _Locator) -> Layer:
    table = _table(table, at, where)
    for key in table:
        if key not in _LAYER_KEYS:
            raise where.error(
                at, key, f"is not a setting threadbot reads ({', '.join(sorted(_LAYER_KEYS))})"
            )
    bases = table.get("knowledge_bases")
    if bases is not None and (
        not isinstance(bases, list) or not all(isinstance(b, str) for b in bases)
    ):
        raise where.error(at, "knowledge_bases", "must be a list of knowledge base names")
    for key in ("prompt", "chat_model"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            raise where.error(at, key, "must be a text")
    prompt = table.get("prompt")
    if prompt is not None and len(prompt) > PROMPT_MAX_CHARS:
        raise where.error(at, "prompt", f"is longer than {PROMPT_MAX_CHARS:,} characters")
    if "answers" in table and not isinstance(table["answers"], bool):
        raise where.error(at, "answers", "must be true or false")
    return Layer(
        knowledge_bases=tuple(bases) if bases is not None else None,
        prompt=prompt.strip() if prompt is not None else None,
        chat_model=table.get("chat_model"),
        reply_mode=_reply_mode(table.get("reply_mode"), at, where),
        allowed_users=_ids(table, "allowed_users", at, where),
        allowed_groups=_ids(table, "allowed_groups", at, where),
        answers=table.get("answers"),
    )


def _reply_mode(value: object, at: tuple[str, ...], where: _Locator) -> ReplyMode | None:
    """A place's reply mode, one its platform has ([defaults] speak for both: Slack's)."""
    if value is None:
        return None
    if at[-1] == "dm":
        raise where.error(at, "reply_mode", "is not a setting of DMs (each message is answered)")
    every = PLATFORM_MODES["discord"]
    if not isinstance(value, str) or value not in every:
        raise where.error(at, "reply_mode", f"must be one of {', '.join(sorted(every))}")
    platform = at[0] if at[0] in PLATFORM_MODES else "slack"
    allowed = PLATFORM_MODES[platform]
    if value not in allowed:
        which = "Slack" if platform == "slack" else "Discord"
        also = " ([defaults] speak for Slack too)" if at == ("defaults",) else ""
        raise where.error(
            at,
            "reply_mode",
            f"is {value!r}, a mode {which} has not{also}: one of {', '.join(sorted(allowed))}",
        )
    return value  # type: ignore[return-value]  # checked against the modes above


def _ids(
    table: dict[str, Any], key: str, at: tuple[str, ...], where: _Locator
) -> tuple[str, ...] | None:
    """A list of user, user group or role ids: texts, or numbers (Discord's ids)."""
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(
        isinstance(i, str | int) and not isinstance(i, bool) for i in value
    ):
        raise where.error(at, key, "must be a list of ids")
    return tuple(str(i).strip() for i in value if str(i).strip())


def _check_base(name: str, at: tuple[str, ...], where: _Locator) -> None:
    if name != DEFAULT_BASE and not BASE_NAME.fullmatch(name):
        raise where.error(at, "knowledge_bases", f"{name!r} is not a knowledge base's name")


class _Locator:
    """Finds the line of a table's key in the file's text, for an error a person can fix."""

    def __init__(self, path: Path, text: str) -> None:
        self._path = path
        self._lines = text.splitlines()

    def error(self, at: tuple[str, ...], key: str, problem: str) -> ConfigInvalid:
        line = self._line(at, key)
        dotted = ".".join((*at, key) if key else at)
        where = f"{self._path}, line {line}" if line else str(self._path)
        return ConfigInvalid(f"{where}: {dotted} {problem}")

    def _line(self, at: tuple[str, ...], key: str) -> int | None:
        if not at:  # a top-level table: its first header
            top = re.compile(r"^\s*\[+\s*" + re.escape(key) + r"\s*[.\]]")
            return next((i + 1 for i, ln in enumerate(self._lines) if top.match(ln)), None)
        header = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(map(re.escape, at)) + r"\s*\]")
        start = next((i for i, ln in enumerate(self._lines) if header.match(ln)), None)
        if start is None:  # no header of its own: the key may be a table under it, `[at.key.x]`
            under = r"\s*\.\s*".join(map(re.escape, (*at, key)))
            nested = re.compile(r"^\s*\[+\s*" + under + r"\s*[.\]]")
            return next((i + 1 for i, ln in enumerate(self._lines) if nested.match(ln)), None)
        key_line = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i in range(start + 1, len(self._lines)):
            if re.match(r"^\s*\[", self._lines[i]):
                break
            if key_line.match(self._lines[i]):
                return i + 1
        return start + 1


class PolicyFile:
    """The configuration file as it is now: read again when it changes (a broken edit keeps
    the last good one, said once in the log).

    Two ways to read it. `await current()` looks at the file first (at most every
    `RELOAD_CHECK_S`), as the pipeline does for each question. `snapshot()` never waits: an
    adapter decides whether and how to take a message before it awaits anything (see
    `TurnRunner.submit`), so it reads the last good configuration, which `watch()`, run by the
    adapter while it serves, keeps within `RELOAD_CHECK_S` of the file. The check runs every
    interval rather than being started by a snapshot read, because then the first message
    after a quiet hour would be decided by the file of an hour ago: an allow list shortened
    meanwhile would let one more question through.

    The file is looked at (and, changed, parsed) in a worker thread, one check at a time; the
    result replaces the configuration in one assignment of an immutable value, so a read on
    the event loop gets the old configuration or the new one, never a mix.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._mtime: float | None = None
        self._checked = float("-inf")
        self._checking = asyncio.Lock()  # the watcher's check and a question's, one at a time
        self._unreadable = False  # said once, not at every check
        if path is not None and not path.is_file():
            raise ConfigInvalid(f"{path}: no such file (THREADBOT_CONFIG names it)")
        self._policies = parse(path) if path is not None else NO_POLICIES
        if path is not None:
            self._mtime = path.stat().st_mtime

    def snapshot(self) -> Policies:
        """The last good configuration, at once: at most `RELOAD_CHECK_S` behind the file
        while `watch()` runs (or `current()` is called that often)."""
        return self._policies

    async def current(self) -> Policies:
        """The configuration now; the file is looked at (in a worker thread) at most every
        `RELOAD_CHECK_S`."""
        if self._path is None:
            return self._policies
        async with self._checking:
            now = time.monotonic()
            if now - self._checked >= RELOAD_CHECK_S:
                self._checked = now
                await asyncio.to_thread(self._reread)
        return self._policies

    async def watch(self) -> None:
        """Look at the file every `RELOAD_CHECK_S` until cancelled, so that `snapshot()`
        follows it while nobody asks anything (returns at once without a file)."""
        if self._path is None:
            return
        while True:
            await self.current()
            await asyncio.sleep(RELOAD_CHECK_S)

    def _reread(self) -> None:
        assert self._path is not None
        try:
            mtime = self._path.stat().st_mtime
        except OSError as exc:
            if not self._unreadable:
                log.error(
                    "cannot read %s (%s): keeping the configuration read before", self._path, exc
                )
            self._unreadable = True
            return
        self._unreadable = False
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._policies = parse(self._path)
                log.info("read %s again: it changed", self._path)
            except (ConfigInvalid, OSError) as exc:
                log.error("%s; keeping the configuration read before", exc)
