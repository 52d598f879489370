"""`inclavare device-plugin` as a command: a real process against the fake kubelet, SIGTERM, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from fakehost import RUNE

from inclavare.deviceplugin.resources import ENCLAVE_MEMORY

TOOL = [sys.executable, "-m", "inclavare.cli.tool._main", "device-plugin"]
P = "inclavare device-plugin: "


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TOOL, *args], capture_output=True, text=True, timeout=30)


def test_serves_until_sigterm_then_takes_its_sockets_and_labels_back(kubelet, kubelet_dir, host, tmp_path):
    features = tmp_path / "features.d" / "inclavare"
    proc = subprocess.Popen([*TOOL, "--kubelet-dir", kubelet_dir, "--host-root", host, "--rune", RUNE,
                             "--enclave-memory-mib", "32", "--feature-file", str(features)],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        reg = kubelet.registered(ENCLAVE_MEMORY, timeout=20)
        kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 32)
        assert features.exists()
        assert os.path.exists(os.path.join(kubelet_dir, reg.request.endpoint))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"registered {ENCLAVE_MEMORY} (inclavare.io-enclave-memory-mib.sock) with kubelet: 32 device(s)" in err
    assert not os.path.exists(os.path.join(kubelet_dir, reg.request.endpoint))
    assert not features.exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--enclave-memory-mib", "-5"], P + "--enclave-memory-mib: -5 is out of range (0 to 131072)"),
        (["--kubelet-dir", "/nonexistent/dp"], P + "/nonexistent/dp: no such directory "
                                               "(kubelet's device-plugins directory)"),
        (["--config", "/nonexistent/dp.toml"], P + "/nonexistent/dp.toml: No such file or directory"),
        (["--interval", "5"], P + "--interval: must be between 0.01 and 1 second "
                              "(kubelet restarts are noticed within it)"),
        (["--enclave-memory-mib", "lots"], P + "argument --enclave-memory-mib: invalid int value: 'lots'"),
    ],
)  # fmt: skip
def test_errors_are_one_line(args, line, tmp_path):
    r = run("--kubelet-dir", str(tmp_path), "--no-feature-file", *args)
    assert r.returncode != 0
    assert r.stderr == line + "\n"
