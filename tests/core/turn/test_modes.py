"""Each channel's reply mode (the most specific place that has one), and which messages nobody
addressed are worth an answer."""

from __future__ import annotations

import pytest

from core.turn.modes import ReplyModes, worth_answering

MODES = ReplyModes({"T1": "auto", "C1": "thread", "C2": "auto", "CAT": "forum", "42": "auto"})


@pytest.mark.parametrize(
    ("places", "mode"),
    [
        (("T1", "C1"), "auto"),  # the thread's own mode before its parent's
        (("T9", "C1"), "thread"),  # else the parent's
        (("T9", None, "CAT"), "forum"),  # else the category's; a missing place skipped
        (("T9", "C9"), "mention"),  # none has one: answered when mentioned
        ((), "mention"),
        ((42,), "auto"),  # ids as numbers, as Discord gives them
    ],
)
def test_the_mode_of_the_first_place_that_has_one(places, mode):
    assert MODES.of(*places) == mode


@pytest.mark.parametrize(
    "text",
    [
        "thanks!", "Thank you!!", "hi all", "good morning everyone", "ok 👍", "ok.", "k", "no",
        "got it, thanks", "nope 🙅", "👍", "🎉🎉", ":tada: :+1:", "hello there team :wave:",
        "<@U123>", "<@U1> <#C2|general>", "+1", "+1!", "...", "", "   ",
    ],
)  # fmt: skip
def test_small_talk_emoji_mentions_and_punctuation_are_not_answered(text):
    assert not worth_answering(text)


@pytest.mark.parametrize(
    "text",
    [
        "how do I deploy?", "deploy?", "hi?", "<@U1> how do I reset?", "Why",
        "The build fails with exit code 137", "error 500", "merci",
        "thanks ok cool nice great yes",  # more than a few words: maybe not small talk
    ],
)  # fmt: skip
def test_questions_and_statements_are_answered(text):
    assert worth_answering(text)


@pytest.mark.parametrize("text", ["?", "??", "?!", "<@U1> ?"])
def test_question_marks_alone_are_punctuation(text):
    assert not worth_answering(text)
