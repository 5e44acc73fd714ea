"""The server-side batcher on its own: coalescing, padding, limits, failures, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from serving.tfserving.standin.batching import Batcher, Tensors
from serving.tfserving.standin.config import BatchingOptions
from serving.tfserving.standin.errors import InvalidArgumentError, UnavailableError


class Recorder:
    """A model that doubles its input and remembers every batch it was given."""

    def __init__(self, fail: bool = False, delay_s: float = 0.0) -> None:
        self.batches: list[np.ndarray] = []
        self.observed: list[tuple[int, int]] = []
        self.fail = fail
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def run(self, inputs: Tensors) -> Tensors:
        time.sleep(self.delay_s)
        with self.lock:
            self.batches.append(inputs["x"].copy())
        if self.fail:
            raise RuntimeError("model exploded")
        return {"y": inputs["x"] * 2, "rows": np.arange(len(inputs["x"]))}

    def observe(self, rows: int, size: int) -> None:
        self.observed.append((rows, size))


def rows(start: int, n: int) -> Tensors:
    return {"x": np.arange(start, start + n, dtype=np.float32).reshape(n, 1)}


def with_batcher(model: Recorder, test: Callable[[Batcher], Awaitable[Any]], **options: Any) -> Any:
    """Run `test` against a started batcher with `options`, then close it."""

    async def main() -> Any:
        executor = ThreadPoolExecutor(2)
        opts = BatchingOptions(**{"max_batch_size": 8, "batch_timeout_micros": 200_000, **options})
        batcher = Batcher(model.run, opts, executor, asyncio.Semaphore(opts.num_batch_threads), model.observe)
        batcher.start()
        try:
            return await test(batcher)
        finally:
            await batcher.close()
            executor.shutdown()

    return asyncio.run(main())


def test_concurrent_requests_share_one_batch_and_get_their_own_rows_back() -> None:
    model = Recorder()

    async def test(b: Batcher) -> list[Tensors]:
        return await asyncio.gather(*(b.submit(rows(10 * i, 1), 1) for i in range(5)))

    results = with_batcher(model, test)
    assert len(model.batches) == 1
    assert model.observed == [(5, 5)]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], [[20.0 * i]])
        assert result["rows"].tolist() == [i]  # outputs are split in request order


def test_a_full_batch_runs_without_waiting_for_the_timeout() -> None:
    model = Recorder()

    async def test(b: Batcher) -> float:
        started = time.monotonic()
        await asyncio.gather(*(b.submit(rows(i, 2), 2) for i in range(4)))
        return time.monotonic() - started

    elapsed = with_batcher(model, test, batch_timeout_micros=30_000_000)
    assert elapsed < 15.0  # anything under the 30 s timeout proves it did not wait; the rest is a loaded box's margin
    assert model.observed == [(8, 8)]


def test_batches_are_padded_to_the_next_allowed_size_with_copies_of_the_first_row() -> None:
    model = Recorder()

    async def test(b: Batcher) -> list[Tensors]:
        return await asyncio.gather(*(b.submit(rows(i + 1, 1), 1) for i in range(3)))

    results = with_batcher(model, test, allowed_batch_sizes=(4, 8))
    assert model.observed == [(3, 4)]
    assert model.batches[0].ravel().tolist() == [1.0, 2.0, 3.0, 1.0]
    assert [r["y"].ravel().tolist() for r in results] == [[2.0], [4.0], [6.0]]  # padding never leaks out


def test_a_request_is_never_split_across_batches() -> None:
    model = Recorder()

    async def test(b: Batcher) -> list[Tensors]:
        return await asyncio.gather(*(b.submit(rows(3 * i, 3), 3) for i in range(3)))

    results = with_batcher(model, test)
    assert sorted(model.observed) == [(3, 3), (6, 6)]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"].ravel(), 2 * np.arange(3 * i, 3 * i + 3))


def test_a_request_larger_than_max_batch_size_is_an_invalid_argument() -> None:
    async def test(b: Batcher) -> None:
        with pytest.raises(InvalidArgumentError, match="Task size 9 is larger than maximum input batch size"):
            await b.submit(rows(0, 9), 9)

    with_batcher(Recorder(), test)


def test_a_full_queue_answers_unavailable_instead_of_queueing_forever() -> None:
    model = Recorder(delay_s=0.3)

    async def test(b: Batcher) -> None:
        first = asyncio.ensure_future(b.submit(rows(0, 8), 8))  # occupies the only batch thread
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(b.submit(rows(0, 8), 8))  # fills the single allowed queued batch
        await asyncio.sleep(0.05)
        with pytest.raises(UnavailableError, match=r"queue .* is full"):
            await b.submit(rows(0, 1), 1)
        await asyncio.gather(first, queued)

    with_batcher(model, test, num_batch_threads=1, max_enqueued_batches=1, batch_timeout_micros=0)


def test_a_failing_batch_fails_every_request_in_it() -> None:
    async def test(b: Batcher) -> list[Any]:
        return await asyncio.gather(*(b.submit(rows(i, 1), 1) for i in range(3)), return_exceptions=True)

    results = with_batcher(Recorder(fail=True), test)
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


def test_a_cancelled_request_is_left_out_of_its_batch() -> None:
    model = Recorder()

    async def test(b: Batcher) -> Tensors:
        gone = asyncio.ensure_future(b.submit(rows(100, 1), 1))
        kept = asyncio.ensure_future(b.submit(rows(7, 1), 1))
        await asyncio.sleep(0.01)
        gone.cancel()
        return await kept

    result = with_batcher(model, test)
    assert model.batches[0].ravel().tolist() == [7.0]
    assert result["y"].ravel().tolist() == [14.0]


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    async def main() -> None:
        executor = ThreadPoolExecutor(1)
        opts = BatchingOptions(max_batch_size=8, batch_timeout_micros=30_000_000, num_batch_threads=1)
        batcher = Batcher(Recorder().run, opts, executor, asyncio.Semaphore(1))
        batcher.start()
        waiting = asyncio.ensure_future(batcher.submit(rows(0, 1), 1))
        await asyncio.sleep(0.05)
        await batcher.close()
        with pytest.raises(UnavailableError):
            await waiting
        with pytest.raises(UnavailableError):
            await batcher.submit(rows(0, 1), 1)
        executor.shutdown()

    asyncio.run(main())
