"""cancel_all stops a task even when a cancellation is swallowed once (asyncio.wait_for on
Python 3.11 can do that), where one cancel() and a gather would wait forever."""

from __future__ import annotations

import asyncio

from edgeplane.node.agent.tasks import cancel_all


async def _stubborn(swallowed: list[int]) -> None:
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if not swallowed:
                swallowed.append(1)  # lost once, as wait_for may lose it
                continue
            raise


def test_a_swallowed_cancellation_does_not_keep_a_task_alive() -> None:
    async def main() -> tuple[bool, bool, list[int]]:
        swallowed: list[int] = []
        once = asyncio.create_task(_stubborn([]))
        await asyncio.sleep(0.02)
        once.cancel()
        done, _ = await asyncio.wait({once}, timeout=0.2)
        single_cancel_enough = bool(done)
        task = asyncio.create_task(_stubborn(swallowed))
        await asyncio.sleep(0.02)
        await cancel_all([task], patience_s=2)
        once.cancel()
        await asyncio.wait({once}, timeout=1)
        return single_cancel_enough, task.done(), swallowed

    single, stopped, swallowed = asyncio.run(main())
    assert single is False  # one cancel() is lost: the task runs on
    assert stopped and swallowed == [1]
