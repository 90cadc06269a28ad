"""👍/👎 under Slack answers: the blocks that carry them, and the clicks and reasons coming back.

Slack's `feedback_buttons` (a `context_actions` block, as Slack's AI apps show them) where the
workspace takes them, two plain buttons where it refuses them (`invalid_blocks`: an older
client or an Enterprise policy). Both carry `up:ANSWER` / `down:ANSWER`, so one listener takes
either; the core keeps the vote (`Feedback`), this module only translates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bots.slack.mrkdwn import SECTION_MAX_LEN, escape, message_args

if TYPE_CHECKING:
    from slack_bolt.app.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from core import Feedback

log = logging.getLogger(__name__)

ACTION_ID = "threadbot_feedback"  # the feedback_buttons element; the plain buttons add :up/:down
ACTIONS = re.compile(rf"^{ACTION_ID}(:up|:down)?$")
REASON_VIEW = "threadbot_feedback_reason"
REASON_TITLE = "What was wrong?"  # a modal title: at most 24 characters
REASON_LABEL = "What was missing or wrong? (optional)"
REASON_MAX_CHARS = 500
INVALID_BLOCKS = "invalid_blocks"


class FeedbackBlocks:
    """The buttons' blocks for one bot: Slack's feedback buttons until Slack refuses them,
    plain buttons from then on (the refusal is per workspace, so it is remembered)."""

    def __init__(self) -> None:
        self.refused = False

    def buttons(self, answer_id: str) -> dict[str, Any]:
        return plain_buttons(answer_id) if self.refused else feedback_buttons(answer_id)

    def refusal(self, exc: SlackApiError) -> bool:
        """Was `exc` Slack refusing the feedback buttons (then retry with plain ones)?"""
        if self.refused or exc.response.get("error") != INVALID_BLOCKS:
            return False
        self.refused = True
        log.info("Slack refused feedback buttons (invalid_blocks): plain buttons from now on")
        return True

    def with_buttons(self, markdown: str, answer_id: str) -> dict[str, Any]:
        """chat.update's `text` and `blocks` for a final answer with its buttons under it: with
        blocks, Slack shows only the blocks, so the answer is in them too."""
        args = message_args(markdown)
        blocks = args.get("blocks") or sections(args["text"])
        return {"text": args["text"], "blocks": [*blocks, self.buttons(answer_id)]}


def feedback_buttons(answer_id: str) -> dict[str, Any]:
    button = _button_text
    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": ACTION_ID,
                "positive_button": button("Helpful", "This answer helped", f"up:{answer_id}"),
                "negative_button": button("Not helpful", "This answer missed", f"down:{answer_id}"),
            }
        ],
    }


def _button_text(text: str, label: str, value: str) -> dict[str, Any]:
    return {
        "text": {"type": "plain_text", "text": text},
        "accessibility_label": label,
        "value": value,
    }


def plain_buttons(answer_id: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": f"{ACTION_ID}:{vote}",
                "text": {"type": "plain_text", "text": face, "emoji": True},
                "value": f"{vote}:{answer_id}",
            }
            for vote, face in (("up", "👍 Helpful"), ("down", "👎 Not helpful"))
        ],
    }


def sections(mrkdwn: str) -> list[dict[str, Any]]:
    """`mrkdwn` in section blocks, each within Slack's limit, cut at line ends."""
    parts: list[str] = []
    while len(mrkdwn) > SECTION_MAX_LEN:
        cut = mrkdwn.rfind("\n", 0, SECTION_MAX_LEN)
        cut = cut if cut > 0 else SECTION_MAX_LEN
        parts.append(mrkdwn[:cut])
        mrkdwn = mrkdwn[cut:].lstrip("\n")
    parts.append(mrkdwn or " ")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": p}} for p in parts]


def reason_view(answer_id: str, channel: str, thread_ts: str | None) -> dict[str, Any]:
    """The 👎 modal: one optional line of why; where the answer is rides along privately."""
    where = {"answer": answer_id, "channel": channel, "thread_ts": thread_ts}
    return {
        "type": "modal",
        "callback_id": REASON_VIEW,
        "private_metadata": json.dumps(where),
        "title": {"type": "plain_text", "text": REASON_TITLE},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": {"type": "plain_text", "text": REASON_LABEL},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason",
                    "multiline": True,
                    "max_length": REASON_MAX_CHARS,
                },
            }
        ],
    }


async def call_a_human(
    client: AsyncWebClient, channel: str, thread_ts: str | None, usergroup: str | None, text: str
) -> bool:
    """Post `text` in the thread pinging the user group (ESCALATE_SLACK_USERGROUP)."""
    if not usergroup:
        return False
    await client.chat_postMessage(
        channel=channel, thread_ts=thread_ts, text=f"<!subteam^{usergroup}> {escape(text)}"
    )
    return True


class SlackFeedback:
    """The listeners for the buttons and the 👎 modal: acknowledged at once (Slack wants it
    within 3 s), then the vote kept, and the clicker told privately.

    The app answers a request only once its listener returns (`process_before_response`, for
    events), so a listener acks and hands its work to a task. Not bolt's lazy listeners: bolt
    deep-copies the request for them, and the request's client holds the bot's shared aiohttp
    session, which cannot be copied (slackapi/bolt-python#545).
    """

    def __init__(self, feedback: Feedback, usergroup: str | None) -> None:
        self._feedback = feedback
        self._usergroup = usergroup
        self._working: set[asyncio.Task[None]] = set()

    def listen(self, app: AsyncApp) -> None:
        app.action(ACTIONS)(self._clicked)
        app.view(REASON_VIEW)(self._submitted)

    async def drain(self) -> None:
        """Wait for the clicks and reasons being kept."""
        while self._working:
            await asyncio.gather(*self._working, return_exceptions=True)

    async def _clicked(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        self._in_background(self.on_click(body, client))

    async def _submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()  # closes the modal
        self._in_background(self.on_reason(body, view))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._working.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._working.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a click on an answer's buttons failed: %r", task.exception())

    async def on_click(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        vote, _, answer_id = str((body.get("actions") or [{}])[0].get("value", "")).partition(":")
        user = str((body.get("user") or {}).get("id", ""))
        if vote not in ("up", "down") or not answer_id or not user:
            return
        container = body.get("container") or {}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id", ""))
        thread_ts = container.get("thread_ts") or (body.get("message") or {}).get("thread_ts")
        told = False
        if vote == "down" and body.get("trigger_id"):
            try:  # first: the trigger lasts 3 s; the modal says the 👎 was taken
                view = reason_view(answer_id, channel, thread_ts)
                await client.views_open(trigger_id=body["trigger_id"], view=view)
                told = True
            except SlackApiError as exc:  # the trigger passed: said in the thread instead
                log.info("could not open the 👎 modal: %s", exc.response.get("error"))
        verdict = await self._feedback.vote(answer_id, f"slack:{user}", vote)  # type: ignore[arg-type]
        if not told or verdict.record is None:
            await self._tell(client, channel, user, thread_ts, verdict.said)
        if verdict.needs_a_human:
            await self._feedback.call("down", _Thread(client, channel, thread_ts, self._usergroup))

    async def on_reason(self, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        try:
            where = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            return
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get("reason") or {}).get("reason") or {}).get("value") or "")
        if user and where.get("answer") and reason.strip():
            await self._feedback.reason(str(where["answer"]), f"slack:{user}", reason)

    async def _tell(
        self, client: AsyncWebClient, channel: str, user: str, thread_ts: str | None, text: str
    ) -> None:
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=escape(text)
            )
        except SlackApiError as exc:  # the vote is kept; only the thanks is lost
            log.info("could not thank %s for a vote: %s", user, exc.response.get("error"))


class _Thread:
    def __init__(
        self, client: AsyncWebClient, channel: str, thread_ts: str | None, usergroup: str | None
    ) -> None:
        self._client, self._channel, self._thread_ts = client, channel, thread_ts
        self._usergroup = usergroup

    async def call_a_human(self, text: str) -> bool:
        return await call_a_human(
            self._client, self._channel, self._thread_ts, self._usergroup, text
        )
