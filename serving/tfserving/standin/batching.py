"""Server-side batching, as TF Serving's `--enable_batching` does it.

Concurrent requests to one signature queue up; a batch closes when it holds `max_batch_size` rows or when its
oldest request has waited `batch_timeout_micros` and a batch thread is free. The batch is padded up to the
next `allowed_batch_sizes` entry (with copies of its first row), run once, and its outputs are split back.
All batchers share `num_batch_threads` threads, as the real server's shared batch scheduler does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from serving.tfserving.standin.config import BatchingOptions
from serving.tfserving.standin.errors import InvalidArgumentError, UnavailableError

Tensors = dict[str, np.ndarray]
RunFn = Callable[[Tensors], Tensors]
BatchObserver = Callable[[int, int], None]
"""Called with (rows from requests, rows after padding) for every batch run."""


@dataclass
class _Task:
    inputs: Tensors
    rows: int
    future: asyncio.Future[Tensors]
    enqueued_at: float


class Batcher:
    """The queue of one signature of one model version; start() it inside the running event loop."""

    def __init__(
        self,
        run: RunFn,
        options: BatchingOptions,
        executor: Executor,
        slots: asyncio.Semaphore,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._run = run
        self._max = options.max_batch_size
        self._max_queued_rows = options.max_enqueued_batches * options.max_batch_size
        self._timeout_s = options.batch_timeout_micros / 1e6
        self._allowed = options.allowed_batch_sizes
        self._executor = executor
        self._slots = slots  # shared by all batchers: one pool of batch threads
        self._on_batch = on_batch
        self._pending: deque[_Task] = deque()
        self._queued_rows = 0
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the scheduling loop on the running event loop."""
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule())

    async def close(self) -> None:
        """Stop scheduling, let running batches finish, fail whatever is still queued."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while self._pending:
            task = self._pending.popleft()
            if not task.future.done():
                task.future.set_exception(UnavailableError("the server is shutting down"))
        self._queued_rows = 0

    async def submit(self, inputs: Tensors, rows: int) -> Tensors:
        """Queue `rows` rows of `inputs` and return this request's slice of the batch outputs."""
        if rows > self._max:
            raise InvalidArgumentError(
                f"Task size {rows} is larger than maximum input batch size {self._max}",
            )
        if self._queued_rows + rows > self._max_queued_rows:
            raise UnavailableError("The batch scheduling queue to which this task was submitted is full")
        if self._scheduler is None or self._scheduler.done():
            raise UnavailableError("the server is shutting down")
        loop = asyncio.get_running_loop()
        task = _Task(inputs, rows, loop.create_future(), loop.time())
        self._pending.append(task)
        self._queued_rows += rows
        self._wake.set()
        return await task.future

    async def _wait_for_wake(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                await self._wait_for_wake(None)
            # Holding a thread slot while the batch fills mirrors the real scheduler: a batch closes early
            # only if a thread is free to run it, and keeps filling while all threads are busy.
            await self._slots.acquire()
            deadline = self._pending[0].enqueued_at + self._timeout_s
            while self._queued_rows < self._max and (left := deadline - loop.time()) > 0:
                await self._wait_for_wake(left)
            tasks = self._take()
            if not tasks:
                self._slots.release()
                continue
            running = loop.create_task(self._execute(tasks))
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    def _take(self) -> list[_Task]:
        tasks: list[_Task] = []
        rows = 0
        while self._pending and rows + self._pending[0].rows <= self._max:
            task = self._pending.popleft()
            self._queued_rows -= task.rows
            if not task.future.done():  # its client went away: spend no compute on it
                tasks.append(task)
                rows += task.rows
        return tasks

    def padded_size(self, rows: int) -> int:
        """The smallest allowed batch size that holds `rows` rows (`rows` itself if none are configured)."""
        return next((size for size in self._allowed if size >= rows), rows)

    async def _execute(self, tasks: list[_Task]) -> None:
        try:
            rows = sum(t.rows for t in tasks)
            size = self.padded_size(rows) if rows else 0
            batch = {}
            for name in tasks[0].inputs:
                joined = np.concatenate([t.inputs[name] for t in tasks], axis=0)
                if size > rows:
                    joined = np.concatenate([joined, np.repeat(joined[:1], size - rows, axis=0)], axis=0)
                batch[name] = joined
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, batch)
            if self._on_batch is not None:
                self._on_batch(rows, size)
            start = 0
            for t in tasks:
                if not t.future.done():
                    t.future.set_result({k: v[start : start + t.rows] for k, v in outputs.items()})
                start += t.rows
        except Exception as e:
            for t in tasks:
                if not t.future.done():
                    t.future.set_exception(e)
        finally:
            self._slots.release()
