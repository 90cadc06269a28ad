"""Which knowledge bases answer a question, by where it was asked: the one rule that keeps a
private base's text out of every place it is not mapped to, applied before retrieval.

A place takes the mapping of its most precise table (channel, then category, then workspace or
guild, then `[defaults]`); a place mapped nowhere searches the fallback base only (the default
one, or `KNOWLEDGE_BASE`). A base marked private answers only where it is mapped by the place's
own table — a channel's or category's, the DM table for direct messages, `[mcp]` for the MCP
server — never through a workspace's or the defaults' mapping, and never in a DM that is not
mapped to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.policy.config import MCP, Layer, Policies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Where:
    """Where a question was asked, as the policy file names places."""

    platform: str
    workspace: str = ""  # a Slack team or a Discord guild ("" for a Discord DM, the console)
    category: str = ""
    channel: str = ""  # a thread counts as its parent channel
    dm: bool = False


def _chain(where: Where) -> tuple[list[tuple[str, ...]], set[tuple[str, ...]]]:
    """The tables that speak for `where`, widest first, and those that are the place's own."""
    platform, workspace = where.platform, where.workspace
    if platform == MCP[0]:  # one place, one table: `[mcp]` (below it, only `[defaults]`)
        return [MCP], {MCP}
    if where.dm:
        chain = [(platform, workspace), (platform, workspace, "dm")] if workspace else []
        chain.append((platform, "dm"))
        return chain, {chain[-1], (platform, workspace, "dm")}
    chain = [
        (platform, workspace),
        (platform, workspace, "categories", where.category),
        (platform, workspace, "channels", where.channel),
    ]
    return chain, set(chain[1:])


def deciding(policies: Policies, where: Where, *names: str) -> tuple[Layer | None, bool]:
    """The most precise table at `where` that sets any of the settings `names` (None when no
    table does), and whether that table is the place's own."""
    chain, own = _chain(where)
    found: tuple[Layer | None, bool] = (None, False)
    if any(getattr(policies.defaults, name) is not None for name in names):
        found = (policies.defaults, False)
    for key in chain:
        layer = policies.layers.get(key)
        if layer is not None and any(getattr(layer, name) is not None for name in names):
            found = (layer, key in own)
    return found


def most_precise(policies: Policies, where: Where, name: str) -> tuple[Any, bool]:
    """The value of setting `name` at `where` from its most precise table (None when no table
    sets it), and whether that table is the place's own."""
    layer, explicit = deciding(policies, where, name)
    return (getattr(layer, name) if layer is not None else None), explicit


def bases_for(policies: Policies, where: Where, fallback: str) -> list[str]:
    """The knowledge bases to search for a question asked at `where`, in the file's order."""
    mapped, explicit = most_precise(policies, where, "knowledge_bases")
    if mapped is None:
        return [fallback]
    bases = list(dict.fromkeys(mapped))
    allowed = [b for b in bases if explicit or b not in policies.private]
    if len(allowed) < len(bases):
        left_out = sorted(set(bases) - set(allowed))
        log.info("not searching private %s at %s: not mapped there", ", ".join(left_out), where)
    return allowed
