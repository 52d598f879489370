"""tools/mklauncher.py: the `rune` launcher's fast exit keeps rune's output and status."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _launcher(tmp_path, name: str = "rune") -> str:
    out = str(tmp_path / name)
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "mklauncher.py"), out], check=True)
    return out


def test_output_to_a_pipe_is_flushed_before_the_fast_exit(tmp_path):
    rune = _launcher(tmp_path)
    with open(rune) as f:
        assert "os._exit(code)" in f.read()
    done = subprocess.run([rune, "--version"], capture_output=True, text=True)  # a pipe: block-buffered stdout
    assert done.returncode == 0
    assert done.stdout.startswith("rune version ")
    assert done.stderr == ""


def test_the_exit_status_is_the_commands(tmp_path):
    rune = _launcher(tmp_path)
    done = subprocess.run([rune, "--root", str(tmp_path / "state"), "state", "nosuch"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "container does not exist" in done.stderr
    done = subprocess.run([rune, "nosuchcommand"], capture_output=True, text=True)
    assert done.returncode == 3


def test_the_shim_keeps_the_ordinary_exit(tmp_path):
    with open(_launcher(tmp_path, "containerd-shim-rune-v2")) as f:
        text = f.read()
    assert "sys.exit(main())" in text
    assert "_exit" not in text
