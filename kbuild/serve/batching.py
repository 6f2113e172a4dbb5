"""Dynamic batching: concurrent requests to one signature are merged into one model call.

The first request of a batch waits at most `max_wait_ms` for others; a batch closes early when it
reaches `max_batch_size` instances. The model runs in a worker thread, off the event loop, and while
it runs the next batch gathers. If a merged call raises, each request is re-run on its own, so one
poisonous request fails alone instead of failing its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from kbuild.serve.codec import batch_size

Batch = dict[str, np.ndarray]
RunFn = Callable[[Batch], Batch]


@dataclass
class _Pending:
    batch: Batch
    future: asyncio.Future
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = batch_size(self.batch)

    @property
    def key(self) -> tuple:
        """Requests merge only when every input has the same per-example shape and every scalar
        input (one value for the whole request) the same value."""
        return tuple((name, value.shape[1:] if value.ndim else value.item()) for name, value in sorted(self.batch.items()))


class Batcher:
    """Queue of requests for one signature, drained by one asyncio task."""

    def __init__(self, run: RunFn, executor: Executor, max_batch_size: int, max_wait_ms: float):
        self._run, self._executor = run, executor
        self._max_size, self._max_wait = max_batch_size, max_wait_ms / 1000
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: _Pending | None = None
        self._task: asyncio.Task | None = None
        self.calls = 0  # model calls made (a test and the benchmark read it)
        self.pending = 0  # requests submitted and not yet answered (`retire` waits for them)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, batch: Batch) -> Batch:
        self.pending += 1
        try:
            future = asyncio.get_running_loop().create_future()
            await self._queue.put(_Pending(batch, future))
            return await future
        finally:
            self.pending -= 1

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry or await self._queue.get()
            self._carry = None
            group, size = [first], first.size
            deadline = loop.time() + self._max_wait
            while size < self._max_size:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if item.key != first.key or size + item.size > self._max_size:
                    self._carry = item  # starts the next batch
                    break
                group.append(item)
                size += item.size
            await self._run_group(group)

    async def _run_group(self, group: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        # Scalar inputs are equal across the group (see `_Pending.key`): pass the first one.
        merged = {name: np.concatenate([p.batch[name] for p in group]) if value.ndim else value
                  for name, value in group[0].batch.items()}
        self.calls += 1
        try:
            outputs = await loop.run_in_executor(self._executor, self._run, merged)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0].future, exception=exc)
                return
            for pending in group:  # find the request that raised; the others still get answers
                await self._run_group([pending])
            return
        start = 0
        for pending in group:
            end = start + pending.size
            _settle(pending.future, result={name: value[start:end] for name, value in outputs.items()})
            start = end


def _settle(future: asyncio.Future, result: Batch | None = None, exception: BaseException | None = None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)


class Unbatched:
    """Batching off: each request calls the model on its own in a worker thread."""

    def __init__(self, run: RunFn, executor: Executor):
        self._run, self._executor = run, executor
        self.calls = 0
        self.pending = 0

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def submit(self, batch: Batch) -> Batch:
        self.calls += 1
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, batch)
        finally:
            self.pending -= 1


async def retire(batcher: Batcher | Unbatched, poll_s: float = 0.05) -> None:
    """Stop `batcher` once the requests already submitted to it have been answered (its model
    version is no longer served; no new request reaches it)."""
    while batcher.pending:
        await asyncio.sleep(poll_s)
    await batcher.stop()
