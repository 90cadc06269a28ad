"""A 👍 or 👎 on an answer, the same on every platform: kept once per person (the last click
wins), counted, answered with one wording, and — on the answer's first 👎, when the operator asks
for it — a call for a human in the thread.

An adapter acknowledges the click within its platform's deadline, then calls `Feedback.vote`
(and `Feedback.reason` when the person says why) and shows what the `Verdict` says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from core.errors import ThreadbotError

if TYPE_CHECKING:
    from core.answer.probe import AnswerProbe, PipelineMetrics
    from core.feedback.records import AnswerRecord, Records, VoteKind
    from core.settings import Settings

log = logging.getLogger(__name__)

Why = Literal["down", "uncovered"]


@runtime_checkable
class CallsAHuman(Protocol):
    """Where a platform posts a call for a person: the answer's thread, pinging the user group
    or role the operator named (ESCALATE_SLACK_USERGROUP, ESCALATE_DISCORD_ROLE)."""

    async def call_a_human(self, text: str) -> bool:
        """Post `text` with the ping; False when nobody is configured to be called."""
        ...


THANKS = {"up": "Thanks, glad it helped.", "down": "Thanks, noted: this answer missed."}
CHANGED = {"up": "Changed your vote to 👍.", "down": "Changed your vote to 👎."}
SAME = {"up": "You already gave this answer 👍.", "down": "You already gave this answer 👎."}
UNKNOWN = "This answer can no longer be rated: its record is gone (too old, or forgotten)."
NOT_KEPT = "I couldn't save your feedback just now (my store does not answer). Please try again."
REASON_THANKS = "Thanks: your reason is noted with the 👎."
NEEDS_A_HUMAN = {
    "down": "Someone found this answer unhelpful: could a person take a look?",
    "uncovered": "The documents don't cover this question: could a person answer it?",
}
REASON_TITLE = "What was wrong?"  # the 👎 modal's title (Slack allows 24 characters)
REASON_LABEL = "What was missing or wrong (optional)"
REASON_MAX_CHARS = 500


@dataclass(frozen=True)
class Verdict:
    """What the voter is told (privately where the platform can), and what else to do."""

    said: str
    record: AnswerRecord | None = None
    ask_reason: bool = False  # a 👎 kept: offer the modal for a reason
    needs_a_human: bool = False  # the answer's first 👎: `Feedback.call` it


class Feedback:
    """Votes and reasons on answers, kept in `Records`, counted by the pipeline's probe."""

    def __init__(
        self, records: Records, settings: Settings, probe: AnswerProbe | PipelineMetrics
    ) -> None:
        self._records = records
        self._settings = settings
        self._probe = probe

    @property
    def enabled(self) -> bool:
        return self._settings.feedback

    async def call(self, why: Why, thread: CallsAHuman) -> None:
        """Call a person into `thread` for `why`, when the operator asks for it there; a call
        that cannot be posted is logged, never raised (the answer and the vote stand)."""
        if why not in self._settings.escalate_on:
            return
        try:
            if await thread.call_a_human(NEEDS_A_HUMAN[why]):
                self._probe.called_a_human(why)
        except Exception as exc:
            log.warning("could not call a person into the thread (%s): %r", why, exc)

    async def vote(self, answer_id: str, voter: str, vote: VoteKind) -> Verdict:
        try:
            kept = await self._records.vote(answer_id, voter, vote)
        except ThreadbotError as exc:
            log.warning("a vote on answer %s was not kept: %s", answer_id, exc)
            self._probe.voted(vote, "failed")
            return Verdict(NOT_KEPT)
        if kept is None:
            self._probe.voted(vote, "unknown")
            return Verdict(UNKNOWN)
        record, before = kept
        outcome = "new" if before is None else "same" if before == vote else "changed"
        self._probe.voted(vote, outcome)
        said = {"new": THANKS, "same": SAME, "changed": CHANGED}[outcome][vote]
        return Verdict(
            said,
            record,
            ask_reason=vote == "down",
            needs_a_human=await self._first(vote, answer_id),
        )

    async def _first(self, vote: VoteKind, answer_id: str) -> bool:
        """Is this the answer's first 👎 (a person is called once, whoever clicks when)?"""
        if vote != "down" or "down" not in self._settings.escalate_on:
            return False
        try:
            return await self._records.first_call(answer_id)
        except ThreadbotError as exc:
            log.warning("not calling a person for answer %s: %s", answer_id, exc)
            return False

    async def reason(self, answer_id: str, voter: str, reason: str) -> Verdict:
        if not reason.strip():  # the modal sent empty: the 👎 stands as it was
            return Verdict(THANKS["down"])
        try:
            kept = await self._records.give_reason(answer_id, voter, reason)
        except ThreadbotError as exc:
            log.warning("a reason on answer %s was not kept: %s", answer_id, exc)
            return Verdict(NOT_KEPT)
        if kept is None:
            return Verdict(UNKNOWN)
        self._probe.voted("down", "reason")
        return Verdict(REASON_THANKS, kept[0])
