"""threadbot's Redis: the key layout and every command threadbot sends, errors mapped once.

Keys (`{ns}` is `REDIS_NAMESPACE`, `{hp}` is `HISTORY_KEY_PREFIX`; a session id carries its
channel as a Redis Cluster hash tag, `slack:{T:C}:ts`, see `core/store/sessions.py`):

| key | type | slot | what |
|---|---|---|---|
| `{hp}{session}` | list | channel | the history, as `RedisChatMessageHistory` writes it |
| `{ns}lock:{session}` | string | channel | the conversation's lease: its holder's token |
| `{ns}line:{session}` | sorted set | channel | the turns waiting for the conversation, by ticket |
| `{ns}tickets:{session}` | counter | channel | the last ticket given in this conversation |
| `{ns}waiting:{session}:{token}` | string | channel | a waiter's lease: it lives, keep its place |
| `{ns}reset:{prefix}` | counter | channel | bumped by each reset of a session or of its channel |
| `{ns}sessions:{prefix}` | set | channel | the sessions below a channel, for a channel-wide reset |
| `{ns}user:{platform}:{user}` | set | its own | the sessions a user asked in, for `forget --user` |
| `{ns}seen:{{event}}` | string | event | an event's claim (its holder's token), then `done` |
| `{ns}inflight:{{event}}` | string | event | JSON: the turn and its messages, until it is final |
| `{ns}inflight` | set | its own | the events with an in-flight record, for recovery |
| `{ns}index:…` | | spread | the shared index, in parts: see `core/knowledge/shared_index.py` |

Every multi-key step is within one slot: a turn's save (history, the channel's session set, the
reset counters it compares), a reset and its counter, a channel-wide reset, taking the
conversation in ticket order, and an event's claim and completion. What spans slots is written
so that a crash between its steps leaves only a harmless extra: a user's index entry is added
before the save, an event is listed in `{ns}inflight` before its record is written and unlisted
after it is gone.

A lease is renewed by its holder's heartbeat every third of `LEASE_S`: a live holder keeps it as
long as it needs, a crashed one loses it within one lease (a Redis restart keeps the expiry).
"""

from __future__ import annotations

from core.store.claims import Claim, Claims
from core.store.conversations import MAYBE_NOT_SAVED, NOT_SAVED
from core.store.line import Line, Place
from core.store.migration import Migration
from core.store.queries import Conversation, Queries

__all__ = ["MAYBE_NOT_SAVED", "NOT_SAVED", "Claim", "Conversation", "Place", "Store"]


class Store(Line, Claims, Queries, Migration):
    """Conversations in Redis: the line and lock of each, event claims, saves and resets, the
    key migration and the operator's queries; one part a module, one client for all."""
