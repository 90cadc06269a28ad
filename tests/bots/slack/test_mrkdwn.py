"""Markdown → Slack mrkdwn: pure function, checked against what Slack renders."""

from __future__ import annotations

import pytest

from bots.slack.mrkdwn import escape, markdown_to_mrkdwn, message_args


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("see [the guide](https://x.io/a?b=1&c=2)", "see <https://x.io/a?b=1&amp;c=2|the guide>"),
        ("<https://example.com>", "<https://example.com>"),
        ("![diagram](https://x.io/d.png)", "<https://x.io/d.png|diagram>"),
        ("# Install", "*Install*"),
        ("## **Step** two ##", "*Step two*"),
        ("- one\n  * two\n+ three", "• one\n  • two\n• three"),
        ("1. first\n2. second", "1. first\n2. second"),
        ("> quoted **q**", "> quoted *q*"),
        ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
        ("use `a<b> **x**`", "use `a&lt;b&gt; **x**`"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("snake_case_name", "snake_case_name"),
        ("---", "───"),
        ("_Sources: guide.md › Install_", "_Sources: guide.md › Install_"),
    ],
)
def test_inline_and_line_formatting(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn


def test_code_fence_keeps_content_and_drops_language() -> None:
    markdown = "Run:\n```python\nx = a < b ** 2  # **not bold**\n```\nDone **now**."
    assert markdown_to_mrkdwn(markdown) == (
        "Run:\n```\nx = a &lt; b ** 2  # **not bold**\n```\nDone *now*."
    )


def test_partial_text_mid_stream_is_safe() -> None:
    # An unclosed bold or fence (the editor shows partial answers) stays literal, never broken.
    assert markdown_to_mrkdwn("This is **unfinis") == "This is **unfinis"
    assert markdown_to_mrkdwn("```sh\npip install <pkg>") == "```\npip install &lt;pkg&gt;"


def test_escape() -> None:
    assert escape("<@U1> & <#C2>") == "&lt;@U1&gt; &amp; &lt;#C2&gt;"


def test_sources_line_becomes_a_context_block() -> None:
    args = message_args("Use **pip**.\n\n_Sources: guide.md › Install_")
    assert args["text"] == "Use *pip*.\n\n_Sources: guide.md › Install_"
    assert args["blocks"][0]["text"]["text"] == "Use *pip*."
    assert args["blocks"][1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "_Sources: guide.md › Install_"}],
    }
    assert "blocks" not in message_args("No sources here.")
