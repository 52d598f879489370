"""The pool itself: instances kept ready per key, handed out once, refilled.

Threads, and what each owns:

* one filler per template with ``size > 0``: while its key has fewer ready
  instances than ``size`` it starts one and waits for its ready, outside the
  lock. A failure is counted, logged in one line and retried after a backoff
  that doubles (up to ``backoff[1]`` seconds), so a broken template is never
  crash-looped; a success resets it.
* the watcher: the only one that reaps. It polls the pidfd of every child
  (preparing, ready or handed out) and a wake pipe; a child that exited is
  reaped (no zombie, whatever its state), and one that exited while ready is
  dropped from its key, whose filler then starts another.
* callers of :meth:`PoolManager.claim` (the claim socket's thread): take a
  ready instance, which is never returned to the pool.

Instances do not ask for PR_SET_PDEATHSIG: it fires when the *thread* that
created the child ends (prctl(2)), so stop() joining the fillers would kill
an instance handed out but not yet reached by its container's init. An idle
instance ends when epm's end of its socket closes, at epm's exit or here
(src/inclavare/enclave/pool/instance.py).

:meth:`stop` kills the instances not handed out, waits until the watcher has
reaped them, and leaves the handed-out ones alone: they are containers' now,
and when epm exits its init (or subreaper) adopts and reaps them.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import threading
import time

from . import spawn
from .metrics import Metrics
from .template import Template

log = logging.getLogger("inclavare.epm.pool")


class PoolManager:
    def __init__(self, templates: tuple[Template, ...], *, command: list[str] | None = None,
                 prepare_timeout: float = 60.0, backoff: tuple[float, float] = (1.0, 300.0),
                 refill_delay: float = 0.0) -> None:  # fmt: skip
        self.templates = {t.key: t for t in templates}
        self.metrics = Metrics(templates)
        self.command = command or spawn.default_command()
        self.prepare_timeout = prepare_timeout
        self.backoff = backoff
        # Containers start in bursts (a deployment scaled up), and the claim's own container is
        # starting while its refill would: filling waits until claims pause for this long, so a
        # refill (SCHED_IDLE as well, spawn.py) never competes with the starts it follows.
        self.refill_delay = refill_delay
        self._last_claim = -refill_delay
        self._cond = threading.Condition()
        self._ready: dict[str, collections.deque[spawn.Instance]] = {k: collections.deque() for k in self.templates}
        self._children: dict[int, spawn.Instance] = {}  # pidfd -> every child not yet reaped
        self._failures = dict.fromkeys(self.templates, 0)
        self._retry_at = dict.fromkeys(self.templates, 0.0)
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def start(self) -> None:
        threads = [threading.Thread(target=self._fill, args=(t,), name=f"epm-pool-{t.short[:8]}", daemon=True)
                   for t in self.templates.values() if t.size > 0]  # fmt: skip
        threads.append(threading.Thread(target=self._watch, name="epm-pool-watch", daemon=True))
        for thread in threads:
            thread.start()
        self._threads = threads

    def ready(self, key: str) -> int:
        with self._cond:
            return len(self._ready.get(key, ()))

    def claim(self, key: str) -> spawn.Instance | None:
        """A ready instance of `key`, now the caller's (it sends the socket, then closes it), or None."""
        with self._cond:
            queue = self._ready.get(key)
            while queue:
                instance = queue.popleft()
                if instance.exited():
                    instance.state = "dead"  # the watcher reaps it
                    instance.close()
                    continue
                instance.state = "claimed"
                self._last_claim = time.monotonic()
                with self.metrics.lock:
                    series = self.metrics.of(key)
                    series.hits += 1
                    series.ready = len(queue)
                self._cond.notify_all()  # its filler refills
                return instance
            with self.metrics.lock:
                self.metrics.of(key).misses += 1
            return None

    def discard(self, instance: spawn.Instance) -> None:
        """A claimed instance that could not be handed over: killed, never pooled again."""
        log.warning("pool: instance pid %d of %s could not be handed over: killed", instance.pid,
                    instance.template.bundle)  # fmt: skip
        instance.kill()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            for instance in self._children.values():
                if instance.state != "claimed":
                    instance.kill()
            self._cond.notify_all()
        self._wake()
        for thread in self._threads:
            thread.join()
        with self._cond:
            for queue in self._ready.values():
                queue.clear()
            for instance in self._children.values():
                instance.release()  # handed out: no longer ours to reap
            self._children.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # the fillers

    def _fill(self, t: Template) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._wants(t):
                    delay = self._due(t) - time.monotonic()
                    self._cond.wait(delay if delay > 0 else None)
                if self._stopping:
                    return
            try:
                self._prepare_one(t)
            except spawn.PrepareFailed as exc:
                if self._stopping:
                    return  # killed by stop()
                self._failed(t, str(exc))
            except Exception as exc:  # a bug must not end the filler: its key would never refill
                log.exception("pool: %s", t.bundle)
                self._failed(t, f"{type(exc).__name__}: {exc}")

    def _wants(self, t: Template) -> bool:
        return len(self._ready[t.key]) < t.size and time.monotonic() >= self._due(t)

    def _due(self, t: Template) -> float:
        """When `t` may be filled next: after its backoff, and once claims have paused."""
        return max(self._retry_at[t.key], self._last_claim + self.refill_delay)

    def _prepare_one(self, t: Template) -> None:
        instance = spawn.start(t, self.command)
        with self._cond:
            self._children[instance.pidfd] = instance
            if self._stopping:
                instance.kill()
        self._wake()  # the watcher polls its pidfd from now on
        prepared = spawn.prepare(instance, self.prepare_timeout)
        seconds = time.monotonic() - instance.started
        with self._cond:
            if self._stopping or instance.state == "dead":
                instance.kill()
                instance.close()
                return
            instance.state = "ready"
            queue = self._ready[t.key]
            queue.append(instance)
            self._failures[t.key] = 0
            with self.metrics.lock:
                series = self.metrics.of(t.key)
                series.ready = len(queue)
                series.observe_fill(seconds, prepared)
        log.debug("pool: instance pid %d of %s ready in %.3f s (%.3f s its own)", instance.pid, t.bundle, seconds,
                  prepared)  # fmt: skip

    def _failed(self, t: Template, why: str) -> None:
        with self._cond:
            self._failures[t.key] += 1
            n = self._failures[t.key]
            delay = min(self.backoff[1], self.backoff[0] * 2 ** min(n - 1, 30))
            self._retry_at[t.key] = time.monotonic() + delay
        with self.metrics.lock:
            self.metrics.of(t.key).failures += 1
        log.warning("pool: %s: preparing an instance failed (%d in a row, next try in %g s): %s", t.bundle, n, delay,
                    why)  # fmt: skip

    # the watcher

    def _watch(self) -> None:
        while True:
            with self._cond:
                if self._stopping and all(i.state == "claimed" for i in self._children.values()):
                    return
                pidfds = list(self._children)
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            for pidfd in pidfds:
                poller.register(pidfd, select.POLLIN)
            events = poller.poll()
            for fd, _ in events:
                if fd == self._wake_r:
                    _drain(fd)
                else:
                    self._reap(fd)

    def _reap(self, pidfd: int) -> None:
        with self._cond:
            instance = self._children.pop(pidfd, None)
        if instance is None:
            return
        status = instance.reap()  # it exited (its pidfd is readable): this does not block
        with self._cond:
            state, instance.state = instance.state, "dead"
            queue = self._ready[instance.template.key]
            if state == "ready" and instance in queue:
                queue.remove(instance)
                instance.close()
                with self.metrics.lock:
                    self.metrics.of(instance.template.key).ready = len(queue)
                self._cond.notify_all()
        if state == "ready" and not self._stopping:
            log.warning("pool: an idle instance of %s (pid %d) exited with status %d: starting another",
                        instance.template.bundle, instance.pid, status)  # fmt: skip
        elif state == "claimed":
            log.debug("pool: handed-out instance pid %d exited with status %d", instance.pid, status)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # already awake


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
