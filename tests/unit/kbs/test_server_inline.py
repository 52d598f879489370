"""The RCAR calls on the event loop (server/app.py ``InlineCalls``) and one write per response (server/transport.py).

What must hold: a call that committed answers only after its commit is on
disk, a refusal too; a failed fsync is a 503, never a response; the loop
keeps serving while the disk syncs; a Rust panic is still a 500; and the
coalescing transport neither reorders nor drops bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest

from inclavare.kbs.errors import AttestationFailed, StorageUnavailable
from inclavare.kbs.server.app import create_app
from inclavare.kbs.server.inline import InlineCalls, RustPanic
from inclavare.kbs.server.transport import CoalescingTransport, http_protocol
from inclavare.kbs.storage import sqlite as sqlite_storage
from inclavare.kbs.storage.interface import AuditRecord

from .helpers import make_broker


def record(detail: str) -> AuditRecord:
    return AuditRecord(at=time.time(), event="deny", outcome="denied", subject="t", detail=detail)


@pytest.fixture
def broker(tmp_path):
    b = make_broker(str(tmp_path))
    yield b
    b.service.close()


class SlowSync:
    """os.fdatasync as the storage module sees it, slowed down and counted (or failing)."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail, self.count = delay, fail, 0
        self._real = os.fdatasync  # taken before the test patches it

    def __call__(self, fd: int) -> None:
        time.sleep(self.delay)
        if self.fail:
            raise OSError(5, "Input/output error")
        self._real(fd)
        self.count += 1


def test_sqlite_in_wal_mode_runs_the_rcar_calls_inline(broker):
    assert broker.service.deps.storage.defers_sync


def test_an_inline_write_returns_only_after_its_fsync_and_the_call_itself_did_not_wait(broker, monkeypatch):
    sync = SlowSync()
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", sync)
    storage = broker.service.deps.storage
    seen_in_call: list[int] = []

    def write() -> str:
        storage.record(record("inline"))
        seen_in_call.append(sync.count)
        return "done"

    assert asyncio.run(InlineCalls(True)(write)) == "done"
    assert seen_in_call == [0]  # the call handed its wait back ...
    assert sync.count == 1  # ... and it ran before the answer


def test_a_refusal_waits_for_the_disk_too(broker, monkeypatch):
    sync = SlowSync()
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", sync)
    storage = broker.service.deps.storage

    def refuse() -> None:
        storage.record(record("burnt"))
        raise AttestationFailed("nonce mismatch", "nonce mismatch")

    with pytest.raises(AttestationFailed):
        asyncio.run(InlineCalls(True)(refuse))
    assert sync.count == 1


def test_a_failed_fsync_is_storage_unavailable_not_an_answer(broker, monkeypatch):
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", SlowSync(fail=True))
    storage = broker.service.deps.storage
    with pytest.raises(StorageUnavailable, match="fsync"):
        asyncio.run(InlineCalls(True)(lambda: storage.record(record("lost"))))


def test_the_loop_keeps_running_while_a_slow_disk_syncs(broker, monkeypatch):
    """The first slow batch stalls the loop once; the next go to the thread (server/inline.py)."""
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", SlowSync(delay=0.3))
    storage = broker.service.deps.storage
    inline = InlineCalls(True)
    asyncio.run(inline(lambda: storage.record(record("found slow"))))
    assert inline.off_loop
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    async def both() -> None:
        await asyncio.gather(inline(lambda: storage.record(record("slow"))), ticker())

    start = time.monotonic()
    asyncio.run(both())
    assert len(ticks) == 5
    assert ticks[-1] - start < 0.25


def test_a_fast_disk_syncs_on_the_loop_one_fsync_for_the_calls_of_one_step(broker, monkeypatch):
    synced: list[int] = []
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", synced.append)  # instant: a fast disk, whatever the test's
    storage = broker.service.deps.storage
    inline = InlineCalls(True)

    async def eight() -> None:
        await asyncio.gather(*(inline(lambda: storage.record(record("batched"))) for _ in range(8)))

    asyncio.run(eight())
    assert len(synced) == 1  # the first wait's fsync covers the seven commits before it
    assert inline._thread is None
    assert not inline.off_loop


def test_one_fsync_held_up_on_a_fast_disk_keeps_the_waits_on_the_loop(broker, monkeypatch):
    storage = broker.service.deps.storage
    inline = InlineCalls(True)
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", lambda fd: None)
    for _ in range(5):
        asyncio.run(inline(lambda: storage.record(record("fast"))))
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", lambda fd: time.sleep(0.01))
    asyncio.run(inline(lambda: storage.record(record("held up once"))))
    assert not inline.off_loop  # smoothed: ~1 ms on average, under SLOW_SYNC
    for _ in range(5):
        asyncio.run(inline(lambda: storage.record(record("slow from now on"))))
    assert inline.off_loop


def test_the_loop_is_tried_again_after_a_slow_spell(broker, monkeypatch):
    from inclavare.kbs.server import inline as inline_module

    monkeypatch.setattr(inline_module, "PROBE_AFTER", 0.05)
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", SlowSync(delay=0.01))
    storage = broker.service.deps.storage
    inline = InlineCalls(True)
    asyncio.run(inline(lambda: storage.record(record("slow"))))
    assert inline.off_loop
    time.sleep(0.06)
    assert not inline.off_loop
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", lambda fd: None)  # instant, whatever the test disk
    asyncio.run(inline(lambda: storage.record(record("fast again"))))
    assert not inline.off_loop


def test_a_panic_inline_is_a_rust_panic():
    """pyo3's PanicException derives from BaseException: made an Exception, so the 500 handler answers it."""
    import cryptography.hazmat.bindings._rust  # noqa: F401 - loads pyo3_runtime

    panic = next(
        c for c in BaseException.__subclasses__() if (c.__module__, c.__name__) == ("pyo3_runtime", "PanicException")
    )

    def panics() -> None:
        raise panic("boom")

    with pytest.raises(RustPanic):
        asyncio.run(InlineCalls(True)(panics))


def test_a_failed_fsync_on_attest_answers_503_problem_json(broker, monkeypatch):
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    body = json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data))
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", SlowSync(fail=True))

    async def attest() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(broker.service), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kbs") as client:
            return await client.post("/kbs/v0/attest", content=body, headers={"cookie": f"kbs-session-id={cookie}"})

    response = asyncio.run(attest())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "token" not in response.text


# -- one write per response -------------------------------------------------------------
class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_writes_in_one_loop_step_leave_as_one_in_order():
    async def main() -> Recorder:
        real = Recorder()
        t = CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(memoryview(b"body"))
        assert real.writes == []
        assert t.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        t.write(b"next")
        await asyncio.sleep(0)
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is the real transport's
        return real

    assert asyncio.run(main()).writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_close_flushes_first_and_abort_drops():
    async def main() -> tuple[Recorder, Recorder]:
        loop = asyncio.get_running_loop()
        a, b = Recorder(), Recorder()
        ta, tb = CoalescingTransport(a, loop), CoalescingTransport(b, loop)
        ta.write(b"last words")
        ta.close()
        tb.write(b"never")
        tb.abort()
        await asyncio.sleep(0)
        return a, b

    a, b = asyncio.run(main())
    assert a.writes == [b"last words"]
    assert a.closed
    assert b.writes == []
    assert b.aborted


def test_uvicorn_gets_the_coalescing_protocol():
    protocol = http_protocol()
    assert protocol != "auto"
    assert "connection_made" in vars(protocol)


def test_a_closed_loop_does_not_stop_the_waits_of_the_next(broker, monkeypatch):
    """One InlineCalls served by two event loops in turn (a test client, a restart): the first may be gone."""
    storage = broker.service.deps.storage
    inline = InlineCalls(True)
    asyncio.run(inline(lambda: storage.record(record("first loop"))))

    async def orphan() -> None:  # a wait whose loop closes before it is answered
        monkeypatch.setattr(sqlite_storage.os, "fdatasync", SlowSync(delay=0.2))
        task = asyncio.ensure_future(inline(lambda: storage.record(record("orphan"))))
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(orphan())
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", SlowSync())
    asyncio.run(asyncio.wait_for(inline(lambda: storage.record(record("next loop"))), 5))


def test_only_paths_under_built_in_policies_run_on_the_loop():
    """A tenant's own Rego may be slow on purpose: it runs in the pool, in its lane (policy/engine.py)."""
    from inclavare.kbs.policy import RESOURCE_POLICIES, governed_by_builtin

    custom = "package policy\ndefault allow := false\nallow if input.submods\n"
    policies = {"default/*": RESOURCE_POLICIES["approved-executables"], "tenant/*": custom}
    assert governed_by_builtin(policies, "default/key/db")
    assert not governed_by_builtin(policies, "tenant/key/db")
    assert governed_by_builtin(policies, "nobody/key/db")  # no policy: refused at once
