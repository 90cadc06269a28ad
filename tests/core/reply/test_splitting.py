"""Where a reply too long for one message is cut (`core.reply.splitting.cut`)."""

from __future__ import annotations

import pytest

from core.reply.splitting import cut


def parts(text: str, limit: int) -> tuple[str, str]:
    """The two messages a cut makes: the head, and the tail with its reopened fence."""
    head, reopen, rest = cut(text, limit)
    return head, reopen + text[rest:]


def test_a_paragraph_wins_over_a_later_line_sentence_or_word():
    text = "First paragraph here.\n\nSecond one. Third line\nfourth words and more words after"
    head, tail = parts(text, 60)
    assert head == "First paragraph here."
    assert tail.startswith("Second one.")


def test_a_line_wins_over_a_later_sentence_or_word():
    text = "A first line of text\nthe second. The third sentence goes on and on"
    head, tail = parts(text, 40)
    assert head == "A first line of text"
    assert tail.startswith("the second.")


def test_a_sentence_wins_over_a_later_word():
    text = "This is sentence one! And sentence two goes on without any end here"
    head, tail = parts(text, 40)
    assert head == "This is sentence one!"
    assert tail.startswith("And sentence")


def test_a_sentence_end_may_carry_a_closing_quote_or_bracket():
    text = 'He said "stop now." Then the speaker walked away into the night'
    head, _ = parts(text, 40)
    assert head == 'He said "stop now."'


def test_a_word_boundary_when_there_is_nothing_better():
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    head, tail = parts(text, 25)
    assert head == "alpha beta gamma delta"
    assert tail == "epsilon zeta eta theta iota kappa"


def test_a_hard_cut_when_there_is_no_boundary_at_all():
    text = "x" * 50
    head, tail = parts(text, 20)
    assert head == "x" * 20
    assert head + tail == text


def test_a_boundary_too_near_the_start_is_passed_over_for_a_later_kind():
    # The only newline sits in the first third: the cut falls at a later word instead.
    text = "ab\ncd ef gh ij kl mn op qr st uv wx yz"
    head, tail = parts(text, 30)
    assert head == "ab\ncd ef gh ij kl mn op qr st"
    assert tail == "uv wx yz"


@pytest.mark.parametrize("limit", [20, 33, 47, 80])
def test_nothing_is_lost_and_the_head_fits(limit: int):
    text = "One two three. Four five six!\nSeven eight nine ten.\n\nEleven twelve thirteen " * 3
    head, tail = parts(text, limit)
    assert len(head) <= limit
    assert head.split() + tail.split() == text.split()


def test_a_cut_that_would_fall_inside_a_fence_moves_before_it():
    text = "Some intro text here.\n\n```python\nprint('a')\nprint('b')\n```\nafter"
    head, reopen, rest = cut(text, 45)
    assert head == "Some intro text here."
    assert reopen == ""
    assert text[rest:].startswith("```python\n")


def test_a_fence_closed_before_the_cut_stays_in_the_head():
    text = "```\ncode\n```\nthen some prose that goes on and on and on for a while"
    head, reopen, _ = cut(text, 40)
    assert head.startswith("```\ncode\n```")
    assert reopen == ""


def test_a_fence_longer_than_the_limit_is_closed_and_reopened_with_its_info_string():
    lines = [f"line_{i} = {i}" for i in range(20)]
    text = "```python\n" + "\n".join(lines) + "\n```\n"
    limit = 80
    head, tail = parts(text, limit)
    assert head.startswith("```python\n")
    assert head.endswith("\n```")
    assert tail.startswith("```python\n")
    # The closing fence is added after the cut: the head may pass the limit by that much only
    # (the editor keeps room for it below the platform's length).
    assert len(head) <= limit + len("\n```")
    # Every code line is in one part or the other, none cut through.
    code = [line for line in (head + "\n" + tail).splitlines() if not line.startswith("```")]
    assert code == lines


def test_a_tilde_fence_is_closed_with_its_own_marker():
    text = "~~~~ sh\n" + "\n".join(f"echo {i}" for i in range(30)) + "\n~~~~\n"
    head, reopen, _ = cut(text, 60)
    assert head.endswith("\n~~~~")
    assert reopen == "~~~~ sh\n"
    assert len(head) <= 60 + len("\n~~~~")


def test_a_long_fence_without_a_newline_is_cut_hard_and_still_closed():
    text = "```\n" + "y" * 100 + "\n```"
    head, reopen, rest = cut(text, 40)
    assert head.endswith("\n```")
    assert reopen == "```\n"
    assert head[4:-4] + text[rest:].removesuffix("\n```") == "y" * 100


def test_the_tail_starts_after_the_whitespace_at_the_cut():
    text = "first paragraph\n\n\n   second paragraph is longer"
    _, reopen, rest = cut(text, 30)
    assert reopen == ""
    assert text[rest:] == "second paragraph is longer"
