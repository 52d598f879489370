"""`inclavare node install|uninstall` for real, in a scratch prefix: pip, launchers, containerd's file.

The launchers must work without the source checkout (run from /, with an
environment that names no venv), containerd itself must read the edited
file (`containerd config dump`), and uninstall must leave the prefix as it
found it and containerd's file byte for byte as it was.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, inclavare
from inclavare.carrier.node import SHIM_MODULE

pytestmark = [pytest.mark.root, pytest.mark.slow]

DEBIAN = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""


def tree(path: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, dirs, files in os.walk(path) for n in dirs + files)


def test_install_then_uninstall(tmp_path, image_bundle):
    prefix, etc = tmp_path / "usr-local", tmp_path / "etc-containerd"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "kubectl").write_text("an operator's file\n")  # must survive
    etc.mkdir()
    config = etc / "config.toml"
    config.write_text(DEBIAN)
    before = tree(str(prefix))
    checkout = sorted(os.listdir(ROOT)), sorted(os.listdir(os.path.join(ROOT, "build")))

    r = inclavare("node", "install", "--prefix", str(prefix), "--containerd-config", str(config), "--source", ROOT)
    assert (sorted(os.listdir(ROOT)), sorted(os.listdir(os.path.join(ROOT, "build")))) == checkout  # built elsewhere
    assert "kind: RuntimeClass" in r.stdout
    assert "handler: rune" in r.stdout
    clean = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # no venv, no PYTHONPATH, not in the checkout
    bin_dir = prefix / "bin"
    for name in ("rune", "inclavare", "containerd-shim-rune-v2"):
        with open(bin_dir / name) as f:
            assert ROOT not in f.read()  # nothing points back at the checkout
    version = subprocess.run([str(bin_dir / "rune"), "--version"], capture_output=True, text=True, cwd="/", env=clean)
    assert version.returncode == 0
    assert version.stdout.startswith("rune version ")
    where = subprocess.run([str(bin_dir / "inclavare"), "carrier", "--help"], capture_output=True, text=True, cwd="/",
                           env=clean)  # fmt: skip
    assert where.returncode == 0
    # The installed tool runs the carrier on a plain image's bundle, from the venv's own copy of the code.
    bundle = image_bundle("wasm")
    node_config = tmp_path / "carrier.toml"
    node_config.write_text(f'[signature]\nnode_key = "{tmp_path}/node-key.pem"\n')
    r = subprocess.run([str(bin_dir / "inclavare"), "carrier", "prepare", "--config", str(node_config), bundle],
                       capture_output=True, text=True, cwd="/", env=clean)  # fmt: skip
    assert r.returncode == 0, r.stderr
    # The shim's module (SHIM_MODULE) comes from another branch: until it is there, its launcher says so in one line.
    shim = subprocess.run([str(bin_dir / "containerd-shim-rune-v2"), "-v"], capture_output=True, text=True, env=clean)
    missing = f"containerd-shim-rune-v2: {SHIM_MODULE} is not part of this installation\n"
    if importlib.util.find_spec(SHIM_MODULE) is None:
        assert (shim.returncode, shim.stderr) == (1, missing)
    else:
        assert missing not in shim.stderr
    if shutil.which("containerd"):
        dump = subprocess.run(["containerd", "--config", str(config), "config", "dump"], capture_output=True,
                              text=True, check=True)  # fmt: skip
        assert ".containerd.runtimes.rune]" in dump.stdout
        assert ".containerd.runtimes.runc]" in dump.stdout  # containerd's default is still there
        assert f'runtime_path = "{bin_dir}/containerd-shim-rune-v2"' in dump.stdout

    r = inclavare("node", "uninstall", "--prefix", str(prefix))
    assert f"removed the 'rune' runtime from {config}" in r.stdout
    assert config.read_text() == DEBIAN
    assert tree(str(prefix)) == before


def test_install_into_a_fresh_prefix_and_config_leaves_nothing_behind(tmp_path):
    prefix, config = tmp_path / "p" / "q", tmp_path / "c" / "config.toml"
    inclavare("node", "install", "--prefix", str(prefix), "--containerd-config", str(config), "--source", ROOT)
    assert config.read_text().startswith("version = 2\n")
    r = inclavare("node", "uninstall", "--prefix", str(prefix))
    assert f"removed {config} (install created it)" in r.stdout
    assert os.listdir(tmp_path) == []
