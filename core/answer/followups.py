"""What retrieval searches for: a follow-up question together with the question it follows.

"And how do I write one?" names nothing the documents could match; after "How do I read a
CSV file?" it means "write a CSV file". A chat model reads the history and understands, but the
passages it is given were found before it answers, and without a model nobody understands: so
the search itself carries the earlier question. The rule is plain words, not a model call, so it
costs nothing and behaves the same with and without a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

# A question that opens by leaning on the one before: "and…", "what about…", "also…".
_LEANS_ON = re.compile(
    r"^\W*(and|or|but|also|so|then|what about|how about|what if|same|instead|plus)\b",
    re.IGNORECASE,
)
# Words that point back at something said before, in a question too short to say it again.
_POINTS_BACK = re.compile(
    r"\b(it|its|one|ones|that|this|those|these|them|they|there|the same|another|else)\b",
    re.IGNORECASE,
)
_SHORT_WORDS = 8  # "what does that do?"; a longer question usually says what it is about
_EARLIER_AT_MOST = 2  # "and with tabs?" after "and how do I write one?" after the real question


def is_follow_up(question: str) -> bool:
    """Whether `question` only makes sense after an earlier one."""
    if _LEANS_ON.match(question):
        return True
    return len(question.split()) <= _SHORT_WORDS and _POINTS_BACK.search(question) is not None


def search_query(history: Sequence[BaseMessage], question: str) -> str:
    """The text to search the documents with: `question`, then (when it is a follow-up) the
    questions it follows, newest first, back to the first that stands on its own. The follow-up
    leads: what it asks for ("write") must outweigh what the earlier question asked ("read")."""
    if not is_follow_up(question):
        return question
    earlier: list[str] = []
    for message in reversed(history):
        if message.type != "human":
            continue
        earlier.append(message.text)
        if not is_follow_up(message.text) or len(earlier) == _EARLIER_AT_MOST:
            break
    return "\n".join([question, *earlier])
