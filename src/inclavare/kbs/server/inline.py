"""Service calls on the event loop, and where their waits for the disk run (server/app.py's docstring).

An RCAR call on SQLite in WAL mode runs on the loop with
:data:`~inclavare.kbs.storage.sqlite.DEFERRED_SYNC` set and hands back its
waits for the disk (storage/sqlite.py, group commit); its answer leaves
only after them. The waits of the calls made in one loop step are run
together, once that step is over: the first fsync covers every commit
before it, so the rest return at once.

Where they run depends on the disk. An fsync of the WAL takes ~0.2 ms on
this project's machines, and run right there on the loop it costs that
much of one worker's time and nothing else; handing it to a thread cost
more than the fsync: a queue put and a wake-up each way, and on a busy
loop the thread then waits up to the interpreter's switch interval (5 ms)
for the GIL (bench/kbs.py: a tenth of a GET's server CPU, and its p99).
A disk slower than :data:`SLOW_SYNC` on average (a network volume, a disk
in trouble) would stall every connection of the worker for as long, so
then the waits go to one thread, a batch at a time, for :data:`PROBE_AFTER`
seconds, and the next batch tries the loop again. The first batch, and the
first after a slow spell, are judged alone: the loop stalls for at most one
slow fsync per ``PROBE_AFTER``. Either way the answer waits for its fsync.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from ...attestation.hazmat.guard import is_panic
from ..storage.sqlite import DEFERRED_SYNC

T = TypeVar("T")
SLOW_SYNC = 0.002  # seconds: batches of waits slower than this, on average, move off the loop (module docstring)
SMOOTHING = 0.1  # weight of the latest batch in that average: one fsync held up by a busy disk moves nothing
PROBE_AFTER = 5.0  # seconds in the thread before the loop is tried again

Waits = list[Callable[[], None]]  # one call's waits for the disk, in commit order
Batch = list[tuple[Waits, "asyncio.Future[None]"]]


class RustPanic(Exception):
    """A panic in cryptography's Rust layer, made an ordinary exception so the 500 handler answers it.

    ``pyo3_runtime.PanicException`` derives from BaseException, which
    starlette's error middleware does not catch: the connection would just
    drop. (/attest never gets here: the service refuses such an attempt.)
    """


async def call(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """``fn`` in the worker thread pool."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except BaseException as exc:
        if is_panic(exc):
            raise RustPanic(f"panic in {getattr(fn, '__qualname__', 'a service call')}") from exc
        raise


class InlineCalls:
    """Service calls on the event loop; their waits for the disk batched per loop step (module docstring)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._batch: Batch = []
        self._off_loop_until = 0.0  # monotonic time until which batches go to the thread
        self._took: float | None = None  # a batch's time on the loop, smoothed; None: the next one starts it
        self._batches: queue.SimpleQueue[tuple[Batch, asyncio.AbstractEventLoop]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started on first use: in the worker, after any fork

    async def __call__(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        if not self.enabled:
            return await call(fn, *args, **kwargs)
        pending: Waits = []
        token = DEFERRED_SYNC.set(pending)
        try:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                if is_panic(exc):
                    raise RustPanic(f"panic in {getattr(fn, '__qualname__', 'a service call')}") from exc
                raise
            finally:
                DEFERRED_SYNC.reset(token)
        finally:  # a refusal waits too: a burnt nonce is on disk before the 401 leaves
            if pending:
                await self._durable(pending)

    @property
    def off_loop(self) -> bool:
        """Whether the waits go to the thread now (a slow disk was seen less than PROBE_AFTER ago)."""
        return time.monotonic() < self._off_loop_until

    async def _durable(self, waits: Waits) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        if not self._batch:  # the first of this step: the batch runs once the step is over
            loop.call_soon(self._run_batch, loop)
        self._batch.append((waits, done))
        await done

    def _run_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._batch = self._batch, []
        if self.off_loop:
            self._hand_over(batch, loop)
            return
        start = time.monotonic()
        results = _run(batch)
        took = time.monotonic() - start
        self._took = took if self._took is None else self._took + (took - self._took) * SMOOTHING
        if self._took > SLOW_SYNC:
            self._off_loop_until = time.monotonic() + PROBE_AFTER
            self._took = None  # the probe after the slow spell is judged on its own
        _settle_all(results)

    def _hand_over(self, batch: Batch, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_batches, name="kbs-disk-waits", daemon=True)
            self._thread.start()
        self._batches.put((batch, loop))

    def _run_batches(self) -> None:
        while True:
            batch, loop = self._batches.get()
            results = _run(batch)
            try:
                loop.call_soon_threadsafe(_settle_all, results)
            except RuntimeError:  # that loop is closed: nobody is waiting any more; serve the next
                continue


def _run(batch: Batch) -> list[tuple[asyncio.Future[None], BaseException | None]]:
    """Run each call's waits in order; a call's first failure is its outcome (the others' are their own)."""
    results: list[tuple[asyncio.Future[None], BaseException | None]] = []
    for waits, done in batch:
        failure: BaseException | None = None
        try:
            for wait in waits:
                wait()
        except BaseException as exc:
            failure = exc
        results.append((done, failure))
    return results


def _settle_all(results: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for done, failure in results:
        if done.cancelled():
            continue
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)
