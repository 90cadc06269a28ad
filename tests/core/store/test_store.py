"""The store (core/store/store.py) against a real Valkey of the test's own: a save that Redis
froze across is told honestly, as not saved only when it may not be."""

from __future__ import annotations

import asyncio

import pytest

from core.answer.pipeline import Pipeline
from core.errors import HistoryUnavailable
from core.store.store import MAYBE_NOT_SAVED
from tests.conftest import MakeSettings
from tests.valkey_server import Valkey


async def answer_then_freeze(pipeline: Pipeline, valkey: Valkey, session: str) -> list[str]:
    """Read the whole answer, and freeze Redis just before the answer is saved."""
    chunks: list[str] = []
    stream = pipeline.answer(session, "q")
    async for chunk in stream:
        chunks.append(chunk)
        if "".join(chunks) == "You said: q":  # the model's last chunk: the save comes next
            valkey.freeze()
    return chunks


@pytest.mark.parametrize("thaw_after_s", [None, 0.7])
async def test_redis_frozen_across_the_save_is_told_honestly(
    thaw_after_s: float | None, make_settings: MakeSettings, valkey: Valkey
) -> None:
    settings = make_settings(redis_url=valkey.url, redis_timeout_s=0.5, lease_s=5)
    session = f"console:frozen{thaw_after_s}"
    async with await Pipeline.create(settings) as pipeline:
        thaw = None
        if thaw_after_s is not None:  # Redis comes back while the save is read back
            thaw = asyncio.get_running_loop().call_later(thaw_after_s + 0.05, valkey.thaw)
        try:
            await answer_then_freeze(pipeline, valkey, session)
            told = None
        except HistoryUnavailable as exc:
            told = exc.user_message
        finally:
            valkey.thaw()
            if thaw is not None:
                thaw.cancel()
        saved = await pipeline.store.history(session).aget_messages()
    if thaw_after_s is None:
        # The save was sent and applied when Redis woke; the user was told it may not be.
        assert told == MAYBE_NOT_SAVED
    else:
        assert told is None  # read back: it was saved, so nothing to apologise for
    assert [m.content for m in saved] == ["q", "You said: q"]
