"""Only root reaches epm: the socket's modes keep others out, SO_PEERCRED refuses any that get in."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from inclavare.epm.config import EpmConfig
from inclavare.epm.errors import EpmError
from inclavare.epm.server import Server

NOBODY = 65534
# Imports first (as root: the source tree may not be readable by nobody), then drop to nobody, then call.
CLIENT = """
import os, sys
from inclavare.epm.client import EpmClient
from inclavare.epm.errors import EpmUnavailable
os.setgroups([]); os.setgid(%(uid)d); os.setuid(%(uid)d)
try:
    with EpmClient(sys.argv[1], timeout=5) as c:
        c.healthz()
except EpmUnavailable as exc:
    print("refused:", exc)
    sys.exit(3)
except Exception as exc:
    print("error:", type(exc).__name__, exc)
    sys.exit(4)
print("served")
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the client runs as another uid")


def as_nobody(socket: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLIENT % {"uid": NOBODY}, socket], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_socket_and_directory_modes(epm):
    address = epm.config.address
    assert stat.S_IMODE(os.stat(address).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(address)).st_mode) == 0o700
    assert os.stat(address).st_uid == 0


def test_another_user_cannot_connect(epm):
    r = as_nobody(epm.config.address)
    assert r.returncode == 3, r.stdout + r.stderr
    assert epm.server.refused == 0  # kept out by the modes, before the gate


def test_a_non_root_peer_is_refused_even_with_the_socket_opened_up(epm, caplog):
    # An administrator's mistake: the directory and the socket opened to everyone.
    run = os.path.dirname(epm.config.address)
    for directory in (os.path.dirname(run), run):
        os.chmod(directory, 0o755)
    os.chmod(epm.config.address, 0o666)
    r = as_nobody(epm.config.address)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "UNAVAILABLE" in r.stdout
    assert epm.server.refused >= 1  # gRPC may try the connection more than once
    assert f"(uid {NOBODY}): epm serves root only" in caplog.text
    with epm.client() as c:
        assert c.healthz()  # root still is


def test_root_is_served(epm):
    r = subprocess.run([sys.executable, "-c", CLIENT.replace("os.setgroups([]); os.setgid(%(uid)d); os.setuid(%(uid)d)",
                                                             ""), epm.config.address],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (r.returncode, r.stdout.strip()) == (0, "served"), r.stderr


def test_a_shared_directory_is_refused(short_dir):
    shared = os.path.join(short_dir, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o755)
    server = Server(EpmConfig(address=os.path.join(shared, "epm.sock")), store=None)  # type: ignore[arg-type]
    with pytest.raises(EpmError, match="must be root's and mode 0700"):
        server.start()


def test_a_live_epm_is_not_replaced(epm):
    other = Server(epm.config, store=None)  # type: ignore[arg-type]
    with pytest.raises(EpmError, match="another epm is serving"):
        other.start()


def test_a_socket_path_too_long_is_refused(short_dir):
    address = os.path.join(short_dir, "d" * 100, "epm.sock")
    server = Server(EpmConfig(address=address), store=None)  # type: ignore[arg-type]
    with pytest.raises(EpmError, match="too long for a unix socket"):
        server.start()
