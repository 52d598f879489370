"""bench/fast_start.py's warm pool: an `inclavare epm serve` with one
``[[pool.enclaves]]`` entry per template (docs/epm.md, "The warm pool"), read
through its metrics; and the native sample enclave's bundle."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.enclave.identity import KeySigner, sign_manifest, write_signature
from inclavare.enclave.identity.expand import dump_manifest, expand_trusted_files
from inclavare.enclave.identity.manifest import parse_manifest
from inclavare.epm.pool.template import read_template
from inclavare.testing.bundles import base_config, make_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")
INCLAVARE = [sys.executable, "-m", "inclavare.cli.tool._main"]
NATIVE_MANIFEST = "/app/hello-native.toml"


def native_bundle(directory: str, key: ed25519.Ed25519PrivateKey, rootfs_cache: str) -> str:
    """The static samples/build/hello-native as /app/hello in the `native` runtime, its
    manifest (samples/native/hello.manifest.toml) expanded and signed by `key`."""
    bundle = make_bundle(directory, base_config(["/app/hello"]), rootfs_cache)
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "app"), exist_ok=True)
    shutil.copy2(os.path.join(SAMPLES, "build", "hello-native"), os.path.join(rootfs, "app", "hello"))
    with open(os.path.join(SAMPLES, "native", "hello.manifest.toml")) as f:
        template = parse_manifest(f.read(), "hello.manifest.toml")
    manifest = rootfs + NATIVE_MANIFEST
    with open(manifest, "w") as f:
        f.write(dump_manifest(expand_trusted_files(template, rootfs)))
    write_signature(sign_manifest(manifest, rootfs, KeySigner(key)), manifest + ".sig")
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["annotations"] = {"enclave.type": "software", "enclave.runtime.path": "native",
                          "enclave.runtime.args": f"manifest={NATIVE_MANIFEST}"}  # fmt: skip
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return bundle


class Pool:
    """epm serving a pool of `size` instances of each template (runtime -> bundle), and
    `node_config`: a rune configuration naming its claim socket (root's, 0600, in the
    caller's 0700 `tmp`: nodeconfig.py refuses anything an other user could change)."""

    def __init__(self, tmp: str, templates: dict[str, str], size: int, env: dict[str, str]) -> None:
        self.size = size
        self.keys = {runtime: read_template(bundle, size).short for runtime, bundle in templates.items()}
        claim = os.path.join(tmp, "pool", "pool.sock")
        self.metrics = f"127.0.0.1:{_free_port()}"
        config = os.path.join(tmp, "epm.toml")
        entries = "".join(f'[[pool.enclaves]]\nbundle = "{b}"\nsize = {size}\n' for b in templates.values())
        _write(config, f'root = "{tmp}/epm-root"\n[grpc]\naddress = "{tmp}/grpc/epm.sock"\n'
                       f'[pool]\nsocket = "{claim}"\nmetrics_address = "{self.metrics}"\n{entries}')  # fmt: skip
        self.node_config = os.path.join(tmp, "rune.toml")
        _write(self.node_config, f'[enclave]\npool_socket = "{claim}"\n')
        self.log = os.path.join(tmp, "epm.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([*INCLAVARE, "epm", "serve", "--config", config], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        try:
            self._wait(lambda: self._page() is not None, "epm's metrics", 30)
        except BaseException:
            self.stop()
            raise

    def hits(self, runtime: str) -> float:
        return self._value("epm_pool_hits_total", runtime)

    def wait_full(self) -> None:
        """Until every entry has `size` instances ready: no refill runs during a timed start."""
        self._wait(lambda: all(self._value("epm_pool_ready", r) == self.size for r in self.keys), "a full pool", 120)

    def stop(self) -> None:
        """SIGTERM: epm kills and reaps its idle instances (docs/epm.md, "Stopping")."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _value(self, metric: str, runtime: str) -> float:
        page = self._page() or {}
        want = f'{metric}{{key="{self.keys[runtime]}",runtime="{runtime}"'
        return sum(v for series, v in page.items() if series.startswith(want))

    def _page(self) -> dict[str, float] | None:
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}  # fmt: skip

    def _wait(self, ready, what: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log) as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"epm: no {what} (exit {self.proc.poll()}): {tail}")
            time.sleep(0.02)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as f:
        f.write(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
