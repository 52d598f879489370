"""A process's stdio: the pumps, containerd's fifos, file:// and binary:// logs, a pty."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

import pytest

from inclavare.shim.errors import InvalidArgument
from inclavare.shim.pump import Pump
from inclavare.shim.stdio import PipeIO, Stdio


def read_all(fd: int, timeout: float = 5.0) -> bytes:
    """Read `fd` to EOF (it must reach EOF within `timeout`)."""
    os.set_blocking(fd, False)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"no EOF within {timeout}s (read {out!r})")


def test_pump_copies_to_eof_and_closes_what_it_owns():
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    done = []
    pump = Pump("t", src_r, dst_w, close=(src_r, dst_w), on_done=done.append).start()
    os.write(src_w, b"x" * 100_000)  # more than a pipe holds: the pump must keep up
    os.close(src_w)
    assert read_all(dst_r) == b"x" * 100_000  # EOF: the pump closed dst_w
    assert pump.join(5)
    assert done == [True]


def test_pump_stop_drains_what_is_there_then_ends():
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    pump = Pump("t", src_r, dst_w, close=(dst_w,)).start()
    os.write(src_w, b"last words")
    time.sleep(0.1)
    pump.stop()  # the writer is still open: no EOF will come
    assert pump.join(5)
    assert read_all(dst_r) == b"last words"
    os.close(src_w)
    os.close(src_r)


def test_pump_ends_on_a_pty_master_once_the_slave_is_closed():
    master, slave = pty.openpty()
    dst_r, dst_w = os.pipe()
    pump = Pump("console", master, dst_w, close=(dst_w,)).start()
    os.write(slave, b"hello\n")
    os.close(slave)
    assert read_all(dst_r).replace(b"\r", b"") == b"hello\n"  # EIO from the master is EOF
    assert pump.join(5)
    os.close(master)


def test_pump_keeps_draining_when_its_reader_is_gone():
    """A process must not block on output nobody reads any more."""
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    os.close(dst_r)  # writes to dst_w now fail with EPIPE
    pump = Pump("t", src_r, dst_w, close=(src_r, dst_w)).start()
    os.write(src_w, b"a" * 200_000)  # would block forever if the pump stopped reading
    os.close(src_w)
    assert pump.join(5)


def test_stdio_schemes():
    assert Stdio().is_null
    assert Stdio(stdout="/run/containerd/fifo/1/c-stdout").scheme() == "fifo"
    assert Stdio(stdout="fifo:///x").scheme() == "fifo"
    assert Stdio(stdout="file:///var/log/c.log").scheme() == "file"
    assert Stdio(stdout="binary:///usr/bin/logger?a=b").scheme() == "binary"
    with pytest.raises(InvalidArgument, match="unknown STDIO scheme http"):
        Stdio(stdout="http://example.com/").scheme()


def test_null_io_gives_dev_null():
    io = PipeIO(Stdio())
    fds = io.child_fds()
    assert len(set(fds)) == 1
    assert os.readlink(f"/proc/self/fd/{fds[0]}") == "/dev/null"
    io.close()


def test_fifos_stdin_held_open_until_close_io(tmp_path):
    """The process sees stdin EOF only after CloseIO and the client's own close."""
    paths = {name: str(tmp_path / name) for name in ("in", "out", "err")}
    for p in paths.values():
        os.mkfifo(p)
    out_r = os.open(paths["out"], os.O_RDONLY | os.O_NONBLOCK)  # containerd's client side
    err_r = os.open(paths["err"], os.O_RDONLY | os.O_NONBLOCK)
    io = PipeIO(Stdio(paths["in"], paths["out"], paths["err"]))
    child_in, child_out, child_err = io.child_fds()
    proc = subprocess.Popen(["sh", "-c", "cat; echo done >&2"], stdin=child_in, stdout=child_out, stderr=child_err)
    io.started()
    in_w = os.open(paths["in"], os.O_WRONLY)
    os.write(in_w, b"typed\n")
    os.close(in_w)  # the client is done, but the shim still holds the fifo: no EOF yet
    time.sleep(0.3)
    assert proc.poll() is None
    io.close_stdin()
    assert proc.wait(5) == 0
    assert read_all(out_r) == b"typed\n"
    assert read_all(err_r) == b"done\n"
    assert io.wait(5)
    io.close()


def test_file_scheme_appends_both_streams(tmp_path):
    log = tmp_path / "logs" / "c.log"
    io = PipeIO(Stdio(stdout=f"file://{log}", stderr=f"file://{log}"))
    _, out, err = io.child_fds()
    subprocess.run(["sh", "-c", "echo one; echo two >&2"], stdout=out, stderr=err, check=True)
    io.started()
    assert io.wait(5)
    io.close()
    assert sorted(log.read_text().splitlines()) == ["one", "two"]


def test_binary_scheme_runs_the_logger_with_its_fds(tmp_path):
    """binary://: the logger gets stdout/stderr as fds 3 and 4 and says ready on fd 5 (pkg/process/io.go)."""
    out = tmp_path / "logged"
    logger = tmp_path / "logger.sh"
    # SIGTERM comes as the process is deleted: a logger finishes what it holds (here, ignores it)
    logger.write_text(f'#!/bin/sh\ntrap "" TERM\necho "$CONTAINER_ID $CONTAINER_NAMESPACE $*" > {out}\n'
                      f'exec 5>&-\ncat <&3 >> {out}\ncat <&4 >> {out}\n')  # fmt: skip
    logger.chmod(0o755)
    code = f"""
import os, sys, threading, time
sys.path.insert(0, {os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")!r})
from inclavare.shim.reaper import Reaper
from inclavare.shim.stdio import PipeIO, Stdio
reaper = Reaper(lambda p, s: None)
threading.Thread(target=lambda: [(reaper.reap(), time.sleep(0.01)) for _ in iter(int, 1)], daemon=True).start()
io = PipeIO(Stdio(stdout="binary://{logger}?level=debug", stderr="binary://{logger}?level=debug"))
io.start_logger(reaper, "c1", "ns1")
null = os.open(os.devnull, os.O_RDWR)
_, o, e = io.child_fds()
pid = reaper.spawn(["sh", "-c", "echo to-out; echo to-err >&2"], null, o, e)
reaper.wait(pid)
io.started()
io.close()  # closes the pipes, sends SIGTERM, waits for the logger to exit
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert out.read_text().splitlines() == ["c1 ns1 level debug", "to-out", "to-err"]
