"""The pacer: new messages in one place spaced by its interval, in the order tickets were taken."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from core.reply.pacing import Pacer, Ticket

INTERVAL_S = 0.05
SLACK_S = 0.002  # the loop may fire a timer up to its clock resolution early


def now() -> float:
    return asyncio.get_running_loop().time()


async def post(ticket: Ticket, posts: list[tuple[str, float]], name: str) -> None:
    async with ticket:
        posts.append((name, now()))


async def test_posts_in_one_place_are_spaced_by_the_interval() -> None:
    pacer = Pacer(INTERVAL_S)
    posts: list[tuple[str, float]] = []
    tickets = [pacer.ticket("C1") for _ in range(3)]
    await asyncio.gather(*(post(t, posts, str(n)) for n, t in enumerate(tickets)))
    assert [name for name, _ in posts] == ["0", "1", "2"]
    times = [at for _, at in posts]
    for earlier, later in itertools.pairwise(times):
        assert later - earlier >= INTERVAL_S - SLACK_S


async def test_the_first_post_goes_at_once() -> None:
    pacer = Pacer(30.0)
    started = now()
    async with pacer.ticket("C1"):
        pass
    assert now() - started < 1.0


async def test_order_is_the_order_tickets_were_taken_not_entered() -> None:
    pacer = Pacer(0.0)
    posts: list[tuple[str, float]] = []
    first, second, third = pacer.ticket("C1"), pacer.ticket("C1"), pacer.ticket("C1")
    # The replies reach their post in the reverse order of their questions.
    waiting = [asyncio.create_task(post(t, posts, n)) for n, t in [("3", third), ("2", second)]]
    await asyncio.sleep(0)
    await post(first, posts, "1")
    await asyncio.gather(*waiting)
    assert [name for name, _ in posts] == ["1", "2", "3"]


async def test_places_do_not_wait_for_each_other() -> None:
    pacer = Pacer(30.0)
    async with pacer.ticket("C1"):
        pass
    started = now()
    async with pacer.ticket("C2"):  # another channel: no wait
        pass
    assert now() - started < 1.0


async def test_a_post_after_the_interval_has_passed_does_not_wait() -> None:
    pacer = Pacer(INTERVAL_S)
    async with pacer.ticket("C1"):
        pass
    # The next reply is ready only once the interval is over.
    ready = asyncio.Event()
    asyncio.get_running_loop().call_later(INTERVAL_S, ready.set)
    await ready.wait()
    started = now()
    async with pacer.ticket("C1"):
        pass
    assert now() - started < INTERVAL_S / 2


async def test_a_released_ticket_lets_the_next_go_without_an_interval() -> None:
    pacer = Pacer(30.0)
    skipped = pacer.ticket("C1")
    nxt = pacer.ticket("C1")
    skipped.release()  # that reply will not post after all
    started = now()
    async with asyncio.timeout(5), nxt:
        pass
    assert now() - started < 1.0


async def test_release_waits_for_those_before() -> None:
    pacer = Pacer(0.0)
    posts: list[tuple[str, float]] = []
    first, middle, last = pacer.ticket("C1"), pacer.ticket("C1"), pacer.ticket("C1")
    middle.release()
    middle.release()  # idempotent
    behind = asyncio.create_task(post(last, posts, "last"))
    for _ in range(10):
        await asyncio.sleep(0)
    assert posts == []  # the first has not posted yet: the last still waits
    await post(first, posts, "first")
    await asyncio.wait_for(behind, timeout=5)
    assert [name for name, _ in posts] == ["first", "last"]


async def test_a_failed_post_still_frees_the_line() -> None:
    pacer = Pacer(0.0)
    failing, nxt = pacer.ticket("C1"), pacer.ticket("C1")
    with pytest.raises(RuntimeError):
        async with failing:
            raise RuntimeError("the platform refused")
    posts: list[tuple[str, float]] = []
    await asyncio.wait_for(post(nxt, posts, "next"), timeout=5)
    assert [name for name, _ in posts] == ["next"]


async def test_a_cancelled_wait_does_not_block_the_line() -> None:
    """The reply behind a cancelled one still goes once the cancelled one releases."""
    pacer = Pacer(0.0)
    first, cancelled, last = pacer.ticket("C1"), pacer.ticket("C1"), pacer.ticket("C1")
    waiting = asyncio.create_task(cancelled.__aenter__())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    cancelled.release()
    posts: list[tuple[str, float]] = []
    behind = asyncio.create_task(post(last, posts, "last"))
    await post(first, posts, "first")
    await asyncio.wait_for(behind, timeout=5)
    assert [name for name, _ in posts] == ["first", "last"]
