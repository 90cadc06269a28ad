"""Background work per session: in submission order, sessions side by side, a graceful stop."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from core.turn.tasks import SessionTasks


async def settle(rounds: int = 20) -> None:
    """Let every ready task run as far as it can (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_one_sessions_work_runs_in_the_order_submitted() -> None:
    """The first message's first await resumes last; it is still answered first."""
    tasks = SessionTasks()
    done: list[str] = []
    first_may_go = asyncio.Event()

    async def first() -> None:
        await first_may_go.wait()
        done.append("first")

    async def second() -> None:
        done.append("second")

    tasks.submit("s", first())
    tasks.submit("s", second())
    await settle()
    assert done == []  # the second waits for the first
    first_may_go.set()
    await tasks.drain()
    assert done == ["first", "second"]


async def test_sessions_do_not_wait_for_each_other() -> None:
    tasks = SessionTasks()
    blocked = asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        await blocked.wait()
        done.append("slow")

    async def quick() -> None:
        done.append("quick")

    tasks.submit("a", slow())
    other = tasks.submit("b", quick())
    await other
    assert done == ["quick"]
    blocked.set()
    await tasks.drain()
    assert done == ["quick", "slow"]


async def test_a_failure_does_not_stop_the_work_behind_it() -> None:
    tasks = SessionTasks()
    done: list[str] = []

    async def fails() -> None:
        raise ValueError("boom")

    async def after() -> None:
        done.append("after")

    failing = tasks.submit("s", fails())
    tasks.submit("s", after())
    await tasks.drain()
    assert done == ["after"]
    with pytest.raises(ValueError, match="boom"):
        failing.result()  # the error stays on its own task


async def test_a_session_is_free_again_once_its_work_is_done() -> None:
    tasks = SessionTasks()
    done: list[int] = []

    async def record(n: int) -> None:
        done.append(n)

    await tasks.submit("s", record(1))
    await tasks.submit("s", record(2))
    assert done == [1, 2]


async def test_drain_waits_for_work_submitted_meanwhile() -> None:
    tasks = SessionTasks()
    done: list[str] = []
    go = asyncio.Event()

    async def later() -> None:
        await go.wait()
        done.append("later")

    async def first() -> None:
        tasks.submit("other", later())
        done.append("first")
        go.set()

    tasks.submit("s", first())
    await tasks.drain()
    assert done == ["first", "later"]


async def test_drain_with_nothing_submitted_returns() -> None:
    await asyncio.wait_for(SessionTasks().drain(), timeout=1)


async def test_aclose_lets_work_in_flight_finish_within_the_grace() -> None:
    tasks = SessionTasks()
    go = asyncio.Event()
    done: list[str] = []

    async def work() -> None:
        await go.wait()
        done.append("finished")

    task = tasks.submit("s", work())
    await settle()
    closing = asyncio.create_task(tasks.aclose(grace_s=30))
    await settle()
    assert not closing.done()  # still waiting for the work
    go.set()
    await asyncio.wait_for(closing, timeout=5)
    assert done == ["finished"]
    assert not task.cancelled()


async def test_aclose_cancels_what_outlives_the_grace_and_never_starts_work_queued() -> None:
    tasks = SessionTasks()
    never = asyncio.Event()
    seen: list[str] = []

    async def stuck() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def queued() -> None:
        seen.append("started")  # must not happen

    running = tasks.submit("s", stuck())
    waiting_work = queued()
    waiting = tasks.submit("s", waiting_work)
    await settle()
    await asyncio.wait_for(tasks.aclose(grace_s=0.01), timeout=5)
    assert seen == ["cancelled"]
    assert running.cancelled() and waiting.cancelled()
    # Closed, not left pending: no "coroutine was never awaited" warning later.
    assert inspect.getcoroutinestate(waiting_work) == inspect.CORO_CLOSED
