"""Markdown (what the model writes) to Slack mrkdwn (what a `text` field renders).

Slack's `text` is not Markdown: bold is `*x*`, italics `_x_`, strike `~x~`, links `<url|label>`,
no headings, and `&`, `<`, `>` must be escaped. The converter is pure and works on partial text
too, because the streaming editor shows every intermediate state of an answer.
"""

from __future__ import annotations

import re
from typing import Any

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]+)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(?=\S)")
_QUOTE = re.compile(r"^((?:\s*>)+)\s?")
_RULE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")
_SOURCES = re.compile(r"\n+(_Sources:[^\n]*_)\s*$")
SECTION_MAX_LEN = 3000  # a section block's text limit
# Placeholders that cannot come from the model: private-use characters.
_BOLD_MARK = "\ue000"
_SLOT = "\ue001{}\ue002"
_SLOT_RE = re.compile("\ue001(\\d+)\ue002")


def escape(text: str) -> str:
    """Slack's three control characters, escaped as its docs require."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_to_mrkdwn(markdown: str) -> str:
    """Convert Markdown to Slack mrkdwn: bold, italics, strike, links, code, lists, headings."""
    out: list[str] = []
    in_fence = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            # Slack shows a language tag as code text, so the fence line loses it.
            out.append("```")
            in_fence = not in_fence
        elif in_fence:
            out.append(escape(line))
        else:
            out.append(_convert_line(line))
    return "\n".join(out)


def _convert_line(line: str) -> str:
    if _RULE.match(line):
        return "───"
    heading = _HEADING.match(line)
    if heading:
        # A heading is bold as a whole; bold inside it would end the bold early.
        title = heading.group(1).replace("**", "").replace("__", "")
        return f"*{_convert_inline(title)}*"
    prefix = ""
    quote = _QUOTE.match(line)
    if quote:
        prefix = "> "  # Slack quotes one level only
        line = line[quote.end() :]
    bullet = _BULLET.match(line)
    if bullet:
        prefix += bullet.group(1) + "• "
        line = line[bullet.end() :]
    return prefix + _convert_inline(line)


def _convert_inline(text: str) -> str:
    slots: list[str] = []

    def keep(value: str) -> str:
        slots.append(value)
        return _SLOT.format(len(slots) - 1)

    # Code first: nothing inside it is formatting. Then links, whose URLs must stay unescaped
    # apart from Slack's three characters.
    text = _INLINE_CODE.sub(lambda m: keep(f"`{escape(m.group(2))}`"), text)
    text = _IMAGE_OR_LINK.sub(
        lambda m: keep(f"<{_link_url(m.group(2))}|{_link_label(m.group(1))}>"), text
    )
    text = _AUTOLINK.sub(lambda m: keep(f"<{_link_url(m.group(1))}>"), text)
    text = escape(text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC_STAR.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = text.replace(_BOLD_MARK, "*")
    return _SLOT_RE.sub(lambda m: slots[int(m.group(1))], text)


def _link_url(url: str) -> str:
    return url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def _link_label(label: str) -> str:
    # A label is plain text in mrkdwn; a `|` or `>` would end the link early.
    return escape(label.replace("|", "¦")).replace("**", "").replace("`", "")


def message_args(markdown: str) -> dict[str, Any]:
    """`text` (plus blocks when the answer ends with its sources) for chat.postMessage/update.

    The sources line becomes a small context block under the answer; `text` keeps everything,
    for notifications and for answers too long for a section block.
    """
    match = _SOURCES.search(markdown)
    text = markdown_to_mrkdwn(markdown)
    if match is None:
        return {"text": text}
    body = markdown_to_mrkdwn(markdown[: match.start()])
    if not body.strip() or len(body) > SECTION_MAX_LEN:
        return {"text": text}
    sources = markdown_to_mrkdwn(match.group(1))
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": sources}]},
        ],
    }
