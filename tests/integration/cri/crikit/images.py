"""The two images the CRI tests need, built locally and imported with ctr.

No registry is reachable, and containerd would need one to pull the
sandbox image; so both images are OCI layouts written with
inclavare.image.build and imported into containerd's `k8s.io` namespace,
where the CRI plugin finds them (`ctr -n k8s.io images import`).

- pause: samples/build/pause (samples/pause/pause.c) as /pause, the
  `sandbox_image` of the private containerd;
- busybox: the busybox-static root filesystem the other integration tests use;
- hello-wasm: busybox plus the signed sample WebAssembly enclave
  (samples/wasm, inclavare.testing.enclaves): /app/hello.wasm and its
  manifest /app/hello-wasm.toml with the signature beside it;
- plain-wasm: busybox plus /app/hello.wasm and nothing else, unsigned: the
  image a carrier makes an enclave of at the shim's Create.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile

from inclavare.image.build import build_image, tar_directory
from inclavare.image.layout import Layout
from inclavare.testing.bundles import build_rootfs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PAUSE_BIN = os.path.join(ROOT, "samples", "build", "pause")
PAUSE_IMAGE = "localhost/inclavare-test/pause:latest"
BUSYBOX_IMAGE = "localhost/inclavare-test/busybox:latest"
HELLO_WASM_IMAGE = "localhost/inclavare-test/hello-wasm:latest"
PLAIN_WASM_IMAGE = "localhost/inclavare-test/plain-wasm:latest"
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin works in
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# ctr import names an image after this index annotation (containerd
# images/archive importer); org.opencontainers.image.ref.name alone would be
# filtered out by ctr's default --base-name handling.
CONTAINERD_NAME = "io.containerd.image.name"


def pause_binary() -> str:
    """samples/build/pause, built now if `make setup` has not built it yet."""
    if not os.path.exists(PAUSE_BIN):
        subprocess.run(["make", "-C", os.path.join(ROOT, "samples"), "build/pause"], check=True, capture_output=True)
    return PAUSE_BIN


def build_archive(workdir: str) -> str:
    """An OCI layout tar with both images; returns its path."""
    layout = os.path.join(workdir, "layout")
    pause_tree = os.path.join(workdir, "pause-rootfs")
    os.makedirs(pause_tree)
    shutil.copy2(pause_binary(), os.path.join(pause_tree, "pause"))
    build_image(layout, PAUSE_IMAGE, [(tar_directory(pause_tree), "gzip")],
                {"Entrypoint": ["/pause"], "Env": [PATH_ENV], "WorkingDir": "/"})  # fmt: skip
    busybox = build_rootfs(os.path.join(workdir, "busybox-rootfs"))
    build_image(layout, BUSYBOX_IMAGE, [(tar_directory(busybox), "gzip")],
                {"Cmd": ["sh"], "Env": [PATH_ENV], "WorkingDir": "/"})  # fmt: skip
    hello = hello_wasm_rootfs(os.path.join(workdir, "hello-wasm"), busybox)
    build_image(layout, HELLO_WASM_IMAGE, [(tar_directory(hello), "gzip")],
                {"Cmd": ["/app/hello.wasm"], "Env": [PATH_ENV], "WorkingDir": "/"})  # fmt: skip
    plain = os.path.join(workdir, "plain-wasm")
    os.makedirs(os.path.join(plain, "app"))
    shutil.copy2(os.path.join(hello, "app", "hello.wasm"), os.path.join(plain, "app", "hello.wasm"))
    build_image(layout, PLAIN_WASM_IMAGE, [(tar_directory(busybox), "gzip"), (tar_directory(plain), "gzip")],
                {"Entrypoint": ["/app/hello.wasm"], "Env": [PATH_ENV], "WorkingDir": "/"})  # fmt: skip
    return pack(layout, os.path.join(workdir, "images.tar"))


def pack(layout: str, archive: str) -> str:
    """The OCI layout `layout` as a tar `ctr images import` names after each image's ref: `archive`."""
    _name_for_containerd(layout)
    with tarfile.open(archive, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(layout, name), name)
    return archive


def hello_wasm_rootfs(workdir: str, busybox: str) -> str:
    """The rootfs of a bundle the tests' own signing key made for the sample enclave."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from inclavare.testing.enclaves import wasm_bundle

    bundle, _identity = wasm_bundle(workdir, ed25519.Ed25519PrivateKey.generate(), busybox)
    return os.path.join(bundle, "rootfs")


def _name_for_containerd(layout: str) -> None:
    index_path = os.path.join(layout, "index.json")
    index = Layout(layout).index()
    for m in index["manifests"]:
        ann = m.setdefault("annotations", {})
        ann[CONTAINERD_NAME] = ann["org.opencontainers.image.ref.name"]
        m["platform"] = {"architecture": "amd64", "os": "linux"}
    with open(index_path, "w") as f:
        json.dump(index, f)


def import_images(ctr: list[str], archive: str, namespace: str = NAMESPACE) -> None:
    """`ctr -n k8s.io images import` (unpacked for the default snapshotter, overlayfs)."""
    proc = subprocess.run([*ctr, "-n", namespace, "images", "import", archive], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ctr images import {archive} exited {proc.returncode}: {proc.stderr.strip()}")
