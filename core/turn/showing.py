"""How a turn's reply is shown: its editor, resumable by another process after a crash, and the
steps a sink can show before the first text."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from core.answer.asked import NOTHING_ASKED, Asked, OnStep, Step
from core.reply.editor import StreamingEditor
from core.turn.types import AnyReplySink, Resumable, ShowsSteps, Turn

if TYPE_CHECKING:
    from core.store.lease import Lease
    from core.store.store import Claim, Store

log = logging.getLogger(__name__)


async def editor_for(
    turn: Turn,
    sink: AnyReplySink,
    lease: Lease,
    claim: Claim | None,
    store: Store,
    *,
    interval_s: float,
    post_deadline_s: float,
    asked: Asked = NOTHING_ASKED,
) -> StreamingEditor[Any]:
    """The editor of a turn's reply. With a claimed event and a resumable sink, each message
    the reply takes is recorded with the event (and what came with the question, as `asked`
    describes it), and a reply a crash interrupted is reused."""
    resume: list[Any] = []
    on_post = None
    if claim is not None and turn.event_key is not None and isinstance(sink, Resumable):
        record = claim.record or {"turn": asdict(turn), "where": sink.where, "handles": []}
        if claim.record is None and asked.where is not None:
            record["asked"] = dict(asked.where)
        resume = [sink.resume(ref) for ref in record["handles"]]
        if claim.record is None:
            await store.record(turn.event_key, record)
        event_key, refs = turn.event_key, list(record["handles"])

        async def recorded(handle: Any) -> None:
            ref = sink.ref(handle)
            if ref not in refs:
                refs.append(ref)
                await store.record(event_key, {**record, "handles": refs})

        on_post = recorded
    return StreamingEditor(
        sink,
        interval_s=interval_s,
        placeholder=sink.placeholder,
        preparing=sink.preparing,
        fallback=sink.fallback,
        resume=resume,
        on_post=on_post,
        post_deadline_s=post_deadline_s,
        check=lease.check,
    )


def steps_for(sink: AnyReplySink, lease: Lease) -> OnStep | None:
    """The answer's steps, for a sink that shows them: cosmetic, so a step that cannot be shown
    is logged and dropped; none is shown once another process took the turn over."""
    if not isinstance(sink, ShowsSteps):
        return None
    shows: ShowsSteps = sink

    async def show(step: Step) -> None:
        lease.check()
        try:
            await shows.step(step)
        except Exception as exc:
            log.debug("step %s not shown: %r", step.id, exc)

    return show
