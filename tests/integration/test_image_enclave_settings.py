"""An image cannot make rune load a library of its choosing on the host.

The image below names, through its Env and its Labels, a "PAL" shipped in
its own rootfs, whose ELF constructor leaves a marker file on the host the
moment anything dlopens it. ``inclavare image unpack`` leaves those settings
out of config.json (docs/encrypted-images.md, "Images and enclave
settings"), so ``rune run`` runs the image as the plain container it is and
the library is never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from inclavare.image.build import build_image, tar_directory

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")]

_PAL = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void loaded(void) {
    int fd = open(MARKER, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) close(fd);
}
int pal_get_version(void) { return 3; }
"""


def _image(tmp_path, rootfs_cache: str, bundle: str, marker: str, routes: tuple[str, ...] = ("env", "labels", "typos"),
           path: str = "") -> str:  # fmt: skip
    pal_dir = tmp_path / "pal-layer"
    (pal_dir / "lib").mkdir(parents=True)
    (tmp_path / "pal.c").write_text(_PAL)
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(pal_dir / "lib/pal.so"),
                    str(tmp_path / "pal.c")], check=True)  # fmt: skip
    pal = path or f"{bundle}/rootfs/lib/pal.so"  # where the unpacked rootfs will hold it, on the host
    env, labels = ["PATH=/bin"], {}
    if "env" in routes:
        env += ["ENCLAVE_TYPE=software", f"ENCLAVE_RUNTIME_PATH={pal}"]
    if "labels" in routes:
        labels.update({"enclave.type": "software", "enclave.runtime.path": pal})
    if "typos" in routes:
        env.append("enclave_runtime_path=" + pal)
        labels["Enclave-Runtime-Path"] = pal
    config = {"Cmd": ["/bin/echo", "a plain container"], "Env": env, "Labels": labels}
    layout = str(tmp_path / "image")
    build_image(layout, "v1", [(tar_directory(rootfs_cache), "gzip"), (tar_directory(str(pal_dir)), "gzip")], config)
    return layout


def _unpack(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "inclavare.cli.tool._main", "image", "unpack", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_image_enclave_settings_do_not_reach_rune(tmp_path, rootfs_cache, rune) -> None:
    bundle, marker = str(tmp_path / "bundle"), str(tmp_path / "pal-was-loaded")
    layout = _image(tmp_path, rootfs_cache, bundle, marker)
    done = _unpack(f"{layout}:v1", bundle)
    assert done.returncode == 0, done.stderr
    run = rune("run", "--bundle", bundle, f"img-enclave-{os.getpid()}")
    assert not os.path.exists(marker), "the image's library was loaded on the host"
    assert (run.returncode, run.stdout.strip()) == (0, "a plain container"), run.stderr

    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    assert not [e for e in spec["process"]["env"] if "enclave" in e.lower()]
    assert not [k for k in spec.get("annotations", {}) if "enclave" in k.lower()]
    warnings = [line for line in done.stderr.splitlines() if "enclave settings are the operator's" in line]
    assert len(warnings) == 6, done.stderr
    assert "pal.so" not in done.stderr  # names only, never values
    assert "software" not in done.stderr


def test_the_operator_can_still_take_them(tmp_path, rootfs_cache) -> None:
    """With --enclave-settings-from-image the bundle carries them (whether rune then loads that
    library is rune's rule on PAL directories, not the unpacker's)."""
    bundle, marker = str(tmp_path / "bundle"), str(tmp_path / "pal-was-loaded")
    layout = _image(tmp_path, rootfs_cache, bundle, marker)
    done = _unpack("--enclave-settings-from-image", f"{layout}:v1", bundle)
    assert done.returncode == 0, done.stderr
    assert "enclave settings" not in done.stderr
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    assert f"ENCLAVE_RUNTIME_PATH={bundle}/rootfs/lib/pal.so" in spec["process"]["env"]
    assert spec["annotations"]["enclave.type"] == "software"
    assert not os.path.exists(marker)


@pytest.mark.parametrize(
    ("routes", "path"),
    [
        (("env",), ""),
        (("labels",), ""),
        (("env", "labels"), "/proc/self/cwd/rootfs/lib/pal.so"),
        (("labels",), "/proc/self/root{bundle}/rootfs/lib/pal.so"),
        (("env",), "{bundle}/../bundle/rootfs/lib/pal.so"),
    ],
)
def test_taken_by_the_operator_they_still_cannot_choose_host_code(tmp_path, rootfs_cache, rune, routes, path):
    """Even when the operator takes an image's enclave settings, rune loads PALs only from the
    node's pal_dirs (docs/architecture.md, "Enclave containers"): one line, nothing loaded."""
    bundle, marker = str(tmp_path / "bundle"), str(tmp_path / "pal-was-loaded")
    layout = _image(tmp_path, rootfs_cache, bundle, marker, routes, path.format(bundle=bundle))
    done = _unpack("--enclave-settings-from-image", f"{layout}:v1", bundle)
    assert done.returncode == 0, done.stderr
    run = rune("run", "--bundle", bundle, f"img-pal-{os.getpid()}", cwd=bundle)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1, run.stderr
    assert "PAL libraries are loaded only from the node's pal_dirs" in run.stderr
    assert not os.path.exists(marker), "the image's library was loaded on the host"


def test_taken_with_a_misspelt_key_the_container_is_refused(tmp_path, rootfs_cache, rune):
    bundle, marker = str(tmp_path / "bundle"), str(tmp_path / "pal-was-loaded")
    layout = _image(tmp_path, rootfs_cache, bundle, marker, ("typos",))
    assert _unpack("--enclave-settings-from-image", f"{layout}:v1", bundle).returncode == 0
    run = rune("run", "--bundle", bundle, f"img-typo-{os.getpid()}")
    assert run.returncode == 1
    assert "not an enclave setting: did you mean" in run.stderr
    assert not os.path.exists(marker)
