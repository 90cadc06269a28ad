"""Where the bot answers without being mentioned: each channel's reply mode, and what it skips.

`mention` (the default) answers when addressed; `auto` answers every message in the channel;
`forum` (Discord) every post of a forum channel, in its thread; `thread` (Discord) every
question in a new thread started from it. A message nobody addressed is skipped when it is
clearly not a question (`worth_answering`), so an auto-reply channel's "thanks!" gets no answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.settings import ReplyMode

# Small talk: a message made of these words only (and at most a few of them) asks nothing.
SMALL_TALK = frozenset(
    "hi hello hey hiya yo hola morning evening good gm gn night thanks thank you thx ty tysm "
    "cheers ok okay k kk cool nice great awesome perfect lol lmao haha yes yep yeah no nope "
    "bye cya welcome np sure done got it +1 ack noted all everyone folks team there".split()
)
_MOST_WORDS = 5
_NOISE = re.compile(r"<[@#!][^>]*>|:[a-z0-9_+-]+:|[^\w\s+]", re.IGNORECASE)  # mentions, emoji


class ReplyModes:
    """Each channel's mode, from the settings (`SLACK_REPLY_MODES`, `DISCORD_REPLY_MODES`)."""

    def __init__(self, modes: Mapping[str, ReplyMode]) -> None:
        self._modes = dict(modes)

    def of(self, *places: object) -> ReplyMode:
        """The mode of the first of `places` (a thread, its parent, their category) that has
        one; `mention` when none has."""
        for place in places:
            mode = self._modes.get(str(place)) if place is not None else None
            if mode is not None:
                return mode
        return "mention"


def worth_answering(text: str) -> bool:
    """False for a message that is clearly not a question: nothing but emoji, mentions and
    punctuation, or a few words of small talk ("thanks!", "hi all", "ok 👍") without a "?"."""
    words = _NOISE.sub(" ", text).lower().split()
    if not words:
        return False
    if "?" in text:
        return True
    return not (len(words) <= _MOST_WORDS and all(w in SMALL_TALK for w in words))
