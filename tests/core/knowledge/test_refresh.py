"""Scheduled refreshes across workers sharing a real Redis: once per period, never two at once."""

from __future__ import annotations

import asyncio

import pytest

from core.answer.pipeline import Pipeline
from core.knowledge.refresh import Refresher, Scheduled
from core.settings import period_s
from tests.conftest import MakeSettings

SITE = Scheduled("https://docs.example.com/guide/", "default", every_s=3600)


async def test_two_workers_refresh_a_source_once_per_period(make_settings: MakeSettings) -> None:
    settings = make_settings(lease_s=2)
    async with await Pipeline.create(settings) as one, await Pipeline.create(settings) as two:
        ran: list[str] = []
        running = 0

        async def refresh(item: Scheduled) -> str:
            nonlocal running
            running += 1
            assert running == 1, "two workers refreshed at once"
            await asyncio.sleep(0.3)
            ran.append(item.source)
            running -= 1
            return "12 pages, 11 unchanged"

        workers = [
            Refresher(p.store.redis, settings, [SITE], refresh, check_s=0.05) for p in (one, two)
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        await asyncio.sleep(1.0)  # many checks by each worker
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert ran == [SITE.source]  # once, by one of them

        # Past its period it is due again (here: the period made short).
        soon = Scheduled(SITE.source, SITE.base, every_s=0.2)
        await asyncio.sleep(0.25)
        assert await workers[1].refresh_if_due(soon)
        assert not await workers[0].refresh_if_due(soon)  # just done


async def test_a_failed_refresh_is_tried_again(make_settings: MakeSettings) -> None:
    settings = make_settings()
    async with await Pipeline.create(settings) as pipeline:
        calls = 0

        async def refresh(item: Scheduled) -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("the site was down")
            return "ok"

        worker = Refresher(pipeline.store.redis, settings, [SITE], refresh)
        with pytest.raises(RuntimeError):
            await worker.refresh_if_due(SITE)
        assert await worker.refresh_if_due(SITE)  # not marked done by the failure
        assert calls == 2


def test_periods_read_as_people_write_them() -> None:
    assert [period_s(p) for p in ("30m", "6h", "1d", "2w", "1.5h")] == [
        1800, 21600, 86400, 1209600, 5400,
    ]  # fmt: skip
    for bad in ("", "6", "h", "-1d", "0h", "a week"):
        with pytest.raises(ValueError, match="is not a period"):
            period_s(bad)
