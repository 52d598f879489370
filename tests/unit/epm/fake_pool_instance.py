"""A stand-in for ``python -m inclavare.enclave.pool.instance`` that speaks its protocol.

    fake_pool_instance.py [--mode ready|fail|hang|badkey|exit] --fd N

It reads ``prepare``, computes the pool key of the template as the real
instance does (src/inclavare/enclave/pool/key.py) and answers ``ready``
(or, by mode, an ``error``, nothing, a wrong key, or exits). Idle, it waits
for its socket: EOF ends it; a message means it was handed out, so, as the
real guest does, it clears PR_SET_PDEATHSIG and answers ``ping`` with
``{"op": "pong", "pid": ...}`` until EOF. It sets PR_SET_PDEATHSIG=SIGKILL
at start, as the real one does, so the tests see epm's threads' effect on it.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
import time

from inclavare._sys import default
from inclavare.enclave.pool import wire
from inclavare.enclave.pool.key import key_of_rootfs

PR_SET_PDEATHSIG = 1


def _pdeathsig(sig: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="ready")
    ap.add_argument("--fd", type=int, required=True)
    args = ap.parse_args()
    _pdeathsig(signal.SIGKILL)
    sock = socket.socket(fileno=args.fd)
    msg, _ = wire.expect(sock, "prepare")
    t0 = time.monotonic()
    if args.mode == "fail":
        wire.send(sock, {"op": "error", "msg": "fake: the template's manifest is not signed", "kind": "EnclaveError"})
        return 1
    if args.mode == "exit":
        return 3
    if args.mode == "hang":
        time.sleep(3600)
    key = key_of_rootfs(default(), wire.string(msg, "rootfs"), wire.string(msg, "runtime"), wire.string(msg, "args"))
    if args.mode == "badkey":
        key = "0" * 64
    wire.send(sock, {"op": "ready", "key": key, "measurement": "11" * 32, "signer": "22" * 32,
                     "seconds": time.monotonic() - t0})  # fmt: skip
    try:
        msg, fds = wire.recv(sock)
    except wire.PoolProtocolError:
        return 0  # EOF while idle: epm let go of it
    _pdeathsig(0)  # handed out: the container's now, not epm's
    while True:
        for fd in fds:
            os.close(fd)
        if msg["op"] == "ping":
            wire.send(sock, {"op": "pong", "pid": os.getpid()})
        try:
            msg, fds = wire.recv(sock)
        except wire.PoolProtocolError:
            return 0


if __name__ == "__main__":
    sys.exit(main())
