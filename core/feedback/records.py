"""What people asked and what they thought of the answers: one record per answer, one vote per
person per answer (the last click wins), kept for `RECORDS_RETENTION_DAYS`.

Keys (`{ns}` is `REDIS_NAMESPACE`; an answer id is its own Redis Cluster hash tag, so an answer's
record and its votes share a slot):

| key | type | what |
|---|---|---|
| `{ns}answer:{{id}}` | string | JSON: the question, the answer, the passages used, where, when |
| `{ns}votes:{{id}}` | hash | voter (`platform:id`) → JSON: up or down, a reason, when |
| `{ns}called:{{id}}` | string | set once a person was called into the answer's thread |
| `{ns}answers` | sorted set | answer ids by time, for `threadbot report --since` |
| `{ns}asked:{platform}:{user}` | sorted set | the answers a person asked for, for `forget` |
| `{ns}voted:{platform}:{user}` | sorted set | the answers a person voted on, by the answer's time |

Every key expires with the retention counted from the answer (its votes with it), and the time
indexes (sorted sets, by the answer's time) drop what is older on each write, so nothing outlives
it; a crash between two writes leaves at most an index entry whose record is gone, which readers
skip. A vote is one script in the answer's slot: never kept for an answer forgotten meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from core.errors import store_errors
from core.store.base import glob_escape, text

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.knowledge.retrieval import Passage
    from core.settings import Settings

log = logging.getLogger(__name__)

VoteKind = Literal["up", "down"]
ANSWER_MAX_CHARS = 8000  # of an answer kept in its record: enough to judge it by
REASON_MAX_CHARS = 500
READ_BATCH = 500  # records read in one round trip by `since`
# A vote, in the answer's slot: none for an answer that is gone; it expires with the answer.
# Returns the record, the voter's vote before, and every vote now (HGETALL's flat list).
VOTE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local before = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
local result = {raw, before or ''}
for _, v in ipairs(redis.call('HGETALL', KEYS[2])) do result[#result + 1] = v end
return result
"""


def answer_id(event_key: str | None) -> str:
    """An answer's id: the same for every delivery of its event (a reply a crash interrupted
    and another process finished keeps its buttons), a fresh one without an event."""
    if event_key is None:
        return uuid.uuid4().hex[:16]
    return hashlib.sha256(event_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Used:
    """A passage an answer was given: how it is cited, its score and its knowledge base."""

    citation: str
    score: float
    base: str = ""


@dataclass(frozen=True)
class Vote:
    voter: str  # platform:id
    vote: VoteKind
    at: float
    reason: str = ""


@dataclass(frozen=True)
class AnswerRecord:
    """One answered question, as `threadbot report` reads it."""

    id: str
    at: float  # unix time
    question: str
    answer: str
    covered: bool  # False: nothing the bot may read there matched
    passages: tuple[Used, ...] = ()
    bases: tuple[str, ...] = ()  # the knowledge bases searched
    platform: str = ""
    workspace: str = ""
    channel: str = ""
    session: str = ""
    asker: str = ""  # platform:id
    votes: tuple[Vote, ...] = field(default=(), compare=False)

    @property
    def ups(self) -> int:
        return sum(v.vote == "up" for v in self.votes)

    @property
    def downs(self) -> int:
        return sum(v.vote == "down" for v in self.votes)

    def to_json(self) -> str:
        fields = asdict(self)
        fields.pop("votes")
        return json.dumps(fields, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str, votes: Sequence[Vote] = ()) -> AnswerRecord:
        fields: dict[str, Any] = json.loads(raw)
        fields["passages"] = tuple(Used(**p) for p in fields.get("passages", ()))
        fields["bases"] = tuple(fields.get("bases", ()))
        return cls(**fields, votes=tuple(votes))


def used(passages: Sequence[Passage]) -> tuple[Used, ...]:
    return tuple(Used(p.chunk.citation, round(p.score, 4), p.base) for p in passages)


@dataclass
class Answered:
    """What the pipeline tells its caller about an answer it saved: its id (the buttons carry
    it), whether the documents covered the question (a "needs a human" ping), and the answer's
    text and the passages it was given (for a caller that shows the sources apart)."""

    id: str
    saved: bool = False
    covered: bool = True
    text: str = ""
    passages: tuple[Passage, ...] = ()


class Records:
    """Answer records and votes in the conversation store's Redis."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._ns = settings.redis_namespace
        self._ttl_s = int(settings.records_retention_days * 24 * 3600)
        self._index = f"{self._ns}answers"

    def _answer(self, id: str) -> str:
        return f"{self._ns}answer:{{{id}}}"

    def _votes(self, id: str) -> str:
        return f"{self._ns}votes:{{{id}}}"

    def _called(self, id: str) -> str:
        return f"{self._ns}called:{{{id}}}"

    def _asked(self, person: str) -> str:
        return f"{self._ns}asked:{person}"

    def _voted(self, person: str) -> str:
        return f"{self._ns}voted:{person}"

    async def keep(self, record: AnswerRecord) -> None:
        """Keep an answered question (its answer cut to `ANSWER_MAX_CHARS`) until the
        retention has passed since it was answered."""
        kept = replace(record, answer=record.answer[:ANSWER_MAX_CHARS])
        until = int(record.at + self._ttl_s)
        now = time.time()
        if until <= now:
            return  # older than the retention already: nothing to keep
        with store_errors(f"keeping the record of answer {record.id}"):
            # Not one transaction: the keys are in different slots of a cluster (see above).
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._answer(record.id), kept.to_json(), exat=until)
                self._index_under(pipe, self._index, record.id, record.at, now)
                if record.asker:
                    self._index_under(pipe, self._asked(record.asker), record.id, record.at, now)
                await pipe.execute()

    def _index_under(self, pipe: Any, key: str, id: str, at: float, now: float) -> None:
        """`id` in the time index `key`, which drops what is older than the retention."""
        pipe.zadd(key, {id: at})
        pipe.zremrangebyscore(key, "-inf", now - self._ttl_s)
        pipe.expire(key, self._ttl_s)

    async def get(self, id: str) -> AnswerRecord | None:
        with store_errors(f"reading answer {id}"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._answer(id))
                pipe.hgetall(self._votes(id))
                raw, votes = await pipe.execute()
        return None if raw is None else AnswerRecord.from_json(text(raw), _votes(votes))

    async def vote(
        self, id: str, voter: str, vote: VoteKind
    ) -> tuple[AnswerRecord, VoteKind | None] | None:
        """Keep `voter`'s vote on answer `id`, replacing an earlier one (its reason too): the
        record as it is now, and the vote it replaced; None when the answer has no record
        (older than the retention, or forgotten)."""
        return await self._set_vote(id, Vote(voter, vote, time.time()))

    async def give_reason(
        self, id: str, voter: str, reason: str
    ) -> tuple[AnswerRecord, VoteKind | None] | None:
        """Add a reason to `voter`'s 👎 on answer `id` (a 👎 is kept with it when none was)."""
        reason = reason.strip()[:REASON_MAX_CHARS]
        return await self._set_vote(id, Vote(voter, "down", time.time(), reason))

    async def _set_vote(self, id: str, vote: Vote) -> tuple[AnswerRecord, VoteKind | None] | None:
        """One atomic step in the answer's slot (`VOTE`): a vote is never kept for an answer
        forgotten meanwhile, and lives no longer than the answer's record."""
        body = json.dumps({"vote": vote.vote, "at": vote.at, "reason": vote.reason})
        with store_errors(f"keeping a vote on answer {id}"):
            found = await self._redis.eval(
                VOTE, 2, self._answer(id), self._votes(id), vote.voter, body
            )
            if not found:
                return None
            raw, before, *flat = found
            async with self._redis.pipeline(transaction=False) as pipe:
                at = json.loads(text(raw))["at"]
                self._index_under(pipe, self._voted(vote.voter), id, float(at), time.time())
                await pipe.execute()
        votes = dict(zip(flat[::2], flat[1::2], strict=True))
        record = AnswerRecord.from_json(text(raw), _votes(votes))
        previous: VoteKind | None = json.loads(text(before))["vote"] if before else None
        return record, previous

    async def first_call(self, id: str) -> bool:
        """True the first time it is asked for answer `id`, in any process: a person is called
        into an answer's thread once, however many 👎 arrive at once."""
        with store_errors(f"marking answer {id} as called for"):
            return bool(await self._redis.set(self._called(id), "1", nx=True, ex=self._ttl_s))

    async def since(self, at: float) -> list[AnswerRecord]:
        """Every kept record from `at` (unix time) on, oldest first, with its votes; read in
        batches, so a long window is never one reply of everything."""
        records = []
        with store_errors("reading the answer records"):
            ids = [text(i) for i in await self._redis.zrangebyscore(self._index, at, "+inf")]
            for start in range(0, len(ids), READ_BATCH):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for id in ids[start : start + READ_BATCH]:
                        pipe.get(self._answer(id))
                        pipe.hgetall(self._votes(id))
                    found = await pipe.execute()
                for raw, votes in zip(found[::2], found[1::2], strict=True):
                    if raw is not None:  # expired, or forgotten, since the index was read
                        records.append(AnswerRecord.from_json(text(raw), _votes(votes)))
        return records

    async def forget(self, person: str) -> int:
        """Remove what `person` (`platform:id`, or a bare id on every platform) asked, with
        every vote on it, and their votes on others' answers; returns how many of their
        records and votes went. A bare id SCANs the keyspace: for an operator, never in a turn."""
        if ":" in person:
            return await self._forget(person)
        people: set[str] = set()
        with store_errors(f"finding the records of {person}"):
            for kind in ("asked", "voted"):
                prefix = f"{self._ns}{kind}:"
                pattern = f"{glob_escape(prefix)}*:{glob_escape(person)}"
                async for key in self._redis.scan_iter(match=pattern, count=500):
                    people.add(text(key).removeprefix(prefix))
        return sum([await self._forget(p) for p in sorted(people)])

    async def _forget(self, person: str) -> int:
        with store_errors(f"forgetting the records of {person}"):
            asked = [text(i) for i in await self._redis.zrange(self._asked(person), 0, -1)]
            voted = [text(i) for i in await self._redis.zrange(self._voted(person), 0, -1)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for id in voted:  # first: their vote on their own answer counts too
                    pipe.hdel(self._votes(id), person)
                for id in asked:
                    pipe.delete(self._answer(id))
                    pipe.delete(self._votes(id))
                    pipe.zrem(self._index, id)
                pipe.delete(self._asked(person))
                pipe.delete(self._voted(person))
                done = await pipe.execute()
        votes = sum(int(n) for n in done[: len(voted)])
        answers = sum(int(n) for n in done[len(voted) : len(voted) + 3 * len(asked) : 3])
        return votes + answers


def _votes(raw: dict[Any, Any]) -> list[Vote]:
    votes = []
    for voter, body in raw.items():
        fields = json.loads(text(body))
        votes.append(Vote(text(voter), fields["vote"], fields["at"], fields.get("reason", "")))
    return sorted(votes, key=lambda v: v.at)
