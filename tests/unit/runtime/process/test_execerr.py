"""The exec failure report `rune start` and `rune exec` read (runtime/process/execerr.py)."""

from __future__ import annotations

import errno
import os

from inclavare.runtime.process import execerr


def test_failure_records():
    assert execerr.failure(b"") is None  # EOF: the exec went ahead
    assert execerr.failure(b"P/bin/sh\0") is None
    assert execerr.failure(b"P/junk\0" + errno.ENOEXEC.to_bytes(4, "little")) == "exec /junk: exec format error"
    assert execerr.failure(b"P/a b\0" + errno.EACCES.to_bytes(4, "little")) == "exec /a b: permission denied"
    assert execerr.failure(b"P/x\0Mloading the seccomp filter: nope\0") == "loading the seccomp filter: nope"
    assert execerr.failure(b"P/x\0\x02\x00") is None  # a truncated errno is no verdict


def test_strerror_reads_as_go():
    assert execerr.strerror(errno.ENOENT) == "no such file or directory"
    assert execerr.strerror(errno.E2BIG) == "argument list too long"


def test_round_trip_through_a_pipe():
    r, w = os.pipe()
    execerr.announce(w, "/srv/app")
    assert execerr.tell_errno(w, 2)
    os.close(w)
    assert execerr.failure(execerr.read_all(r)) == "exec /srv/app: no such file or directory"
    os.close(r)
