"""containerd-shim-rune-v2's command line: Go flag syntax, one-line failures as upstream prints them."""

from __future__ import annotations

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHIM = os.path.join(ROOT, "build", "containerd-shim-rune-v2")


def shim(*args: str, cwd: str | None = None, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    if not os.path.exists(SHIM):
        pytest.skip("build/containerd-shim-rune-v2 is not built (make setup)")
    return subprocess.run([SHIM, *args], capture_output=True, input=stdin, cwd=cwd, timeout=60, check=False)


def test_version():
    out = shim("-v")
    assert out.returncode == 0
    assert b"Version:  inclavare" in out.stdout


def test_namespace_is_required():
    out = shim("-id", "c1", "start")
    assert (out.returncode, out.stderr) == (1, b"io.containerd.rune.v2: shim namespace cannot be empty\n")


def test_unknown_flag_and_action_are_one_line():
    out = shim("-namespace", "ns", "-bogus", "start")
    assert (out.returncode, out.stderr) == (1, b"io.containerd.rune.v2: flag provided but not defined: -bogus\n")
    out = shim("-namespace", "ns", "restart")
    assert out.stderr == b"io.containerd.rune.v2: unknown action 'restart' (want start, delete, or none to serve)\n"


def test_start_without_a_bundle_fails_with_the_reason_not_a_traceback(tmp_path):
    out = shim("-namespace", "ns", "-address", str(tmp_path / "c.sock"), "-id", "c1", "start", cwd=str(tmp_path))
    assert out.returncode == 1
    assert out.stdout == b""
    assert out.stderr.decode().startswith(f"io.containerd.rune.v2: {tmp_path}/config.json: No such file")
    assert b"Traceback" not in out.stderr


def test_start_refuses_a_bad_handler_config_with_its_reason(tmp_path):
    """A mistake in the runtime handler's configuration fails `start`, naming file and key."""
    from inclavare.shim import pb

    (tmp_path / "config.json").write_text("{}")
    conf = tmp_path / "shim.toml"
    conf.write_text("enclave_requried = true\n")
    opts = pb.runtime_options.Options(config_path=str(conf))
    any_ = pb.wkt.Any(type_url="runtimeoptions.v1.Options", value=opts.SerializeToString())
    out = shim("-namespace", "ns", "-address", str(tmp_path / "c.sock"), "-id", "c1", "start", cwd=str(tmp_path),
               stdin=any_.SerializeToString())  # fmt: skip
    assert out.returncode == 1
    assert out.stdout == b""
    assert out.stderr.decode().strip() == (f"io.containerd.rune.v2: {conf}: enclave_requried: unknown setting "
                                           "(known: binary_name, carrier_config, enclave_required, root, "
                                           "systemd_cgroup)")  # fmt: skip
    from inclavare.shim.start import socket_address

    socket_path = socket_address(str(tmp_path / "c.sock"), "ns", "c1").removeprefix("unix://")
    assert not os.path.exists(socket_path)  # nothing left listening for containerd to find
