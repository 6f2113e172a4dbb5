"""Dynamic batching: concurrent requests merge into fewer model calls; failures stay per request."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kbuild.serve.batching import Batcher


def _run(coroutine_factory):
    with ThreadPoolExecutor(2) as executor:
        return asyncio.run(coroutine_factory(executor))


def _doubling_model(sizes, gate=None):
    def run(batch):
        if gate is not None:
            gate.wait(5)
        sizes.append(len(batch["x"]))
        if (batch["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": batch["x"] * 2}

    return run


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows():
    sizes: list[int] = []

    async def scenario(executor):
        batcher = Batcher(_doubling_model(sizes), executor, max_batch_size=64, max_wait_ms=50)
        batcher.start()
        requests = [np.array([i, i + 100]) for i in range(10)]
        answers = await asyncio.gather(*(batcher.submit({"x": r}) for r in requests))
        await batcher.stop()
        return requests, answers

    requests, answers = _run(scenario)
    for request, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer["y"], request * 2)
    assert sum(sizes) == 20 and len(sizes) < 10


def test_a_batch_never_exceeds_the_max_size():
    sizes: list[int] = []
    gate = threading.Event()

    async def scenario(executor):
        batcher = Batcher(_doubling_model(sizes, gate), executor, max_batch_size=4, max_wait_ms=20)
        batcher.start()
        pending = asyncio.gather(*(batcher.submit({"x": np.array([i])}) for i in range(10)))
        await asyncio.sleep(0.05)
        gate.set()
        await pending
        await batcher.stop()

    _run(scenario)
    assert sum(sizes) == 10 and max(sizes) <= 4


def test_a_failing_request_fails_alone_in_a_merged_batch():
    sizes: list[int] = []

    async def scenario(executor):
        batcher = Batcher(_doubling_model(sizes), executor, max_batch_size=64, max_wait_ms=50)
        batcher.start()
        results = await asyncio.gather(batcher.submit({"x": np.array([1])}), batcher.submit({"x": np.array([-1])}),
                                       batcher.submit({"x": np.array([3])}), return_exceptions=True)
        await batcher.stop()
        return results

    good, bad, other = _run(scenario)
    assert isinstance(bad, ValueError)
    np.testing.assert_array_equal(good["y"], [2])
    np.testing.assert_array_equal(other["y"], [6])


def test_requests_of_different_shapes_are_not_merged():
    sizes: list[int] = []

    async def scenario(executor):
        batcher = Batcher(lambda b: (sizes.append(len(b["x"])), {"y": b["x"].sum(axis=1)})[1], executor, 64, 50)
        batcher.start()
        a, b = await asyncio.gather(batcher.submit({"x": np.ones([2, 3])}), batcher.submit({"x": np.ones([1, 5])}))
        await batcher.stop()
        return a, b

    a, b = _run(scenario)
    assert a["y"].tolist() == [3, 3] and b["y"].tolist() == [5]
    assert sorted(sizes) == [1, 2]


def test_zero_wait_still_answers_a_lone_request():
    async def scenario(executor):
        batcher = Batcher(_doubling_model([]), executor, max_batch_size=8, max_wait_ms=0.0)
        batcher.start()
        answer = await batcher.submit({"x": np.array([5])})
        await batcher.stop()
        return answer

    assert _run(scenario)["y"].tolist() == [10]
