"""Fixtures of the carrier integration tests: plain images unpacked into bundles, a signing server process.

The images are OCI layouts written with inclavare.image.build (busybox plus a
sample program as the entrypoint, unsigned: the carrier signs) and unpacked
with inclavare.image.unpack, as tests/integration/cri/crikit/images.py makes
the CRI tests' images. The signing server is the real ``inclavare
signing-server serve`` in a process of its own, with a PKI made by openssl(1)
(not by the code under test) and tokens made by ``inclavare signing-server token``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from inclavare.image.build import build_image, tar_directory
from inclavare.image.unpack import unpack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SAMPLES = os.path.join(ROOT, "samples")
INCLAVARE = [sys.executable, "-m", "inclavare.cli.tool._main"]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROGRAMS = {"wasm": ("hello.wasm", "/app/hello.wasm"), "native": ("hello-native", "/app/hello")}


def inclavare(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([*INCLAVARE, *args], capture_output=True, text=True, timeout=120, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"inclavare {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def samples() -> str:
    subprocess.run(["make", "-s", "-C", SAMPLES], check=True, timeout=120)
    return os.path.join(SAMPLES, "build")


@pytest.fixture(scope="module")
def plain_image(tmp_path_factory, samples, rootfs_cache):
    """plain_image(ref, carrier, files={}) -> writes the plain image `ref` into the module's OCI layout:
    busybox plus the carrier's sample as Entrypoint, plus `files` ({path: bytes}) in a layer of its own."""
    layout = str(tmp_path_factory.mktemp("images") / "layout")
    base = tar_directory(rootfs_cache)

    def build(ref: str, carrier: str, files: dict[str, bytes] | None = None) -> str:
        binary, program = PROGRAMS[carrier]
        tree = str(tmp_path_factory.mktemp(f"{ref}-layer"))
        os.makedirs(os.path.join(tree, "app"))
        shutil.copy2(os.path.join(samples, binary), tree + program)
        layers = [(base, "gzip"), (tar_directory(tree), "gzip")]
        if files:
            extra = str(tmp_path_factory.mktemp(f"{ref}-files"))
            for path, data in files.items():
                os.makedirs(os.path.dirname(extra + path), exist_ok=True)
                with open(extra + path, "wb") as f:
                    f.write(data)
            layers.append((tar_directory(extra), "gzip"))
        config = {"Entrypoint": [program], "Cmd": [], "Env": [PATH_ENV, f"RUNE_CARRIER={carrier}"], "WorkingDir": "/"}
        build_image(layout, ref, layers, config)
        return layout

    return build


@pytest.fixture(scope="module")
def images(plain_image) -> str:
    """An OCI layout with plain images `wasm` and `native`: busybox plus the sample as Entrypoint."""
    for carrier in PROGRAMS:
        layout = plain_image(carrier, carrier)
    return layout


@pytest.fixture
def image_bundle(images, tmp_path):
    """image_bundle(ref, args=[], env=[], annotations={}, name=ref) -> a bundle unpacked from that plain image
    (`wasm`, `native`, or one plain_image added), with the args, env and annotations a pod would add."""

    def make(ref: str, args: list[str] | None = None, env: list[str] | None = None,
             annotations: dict[str, str] | None = None, name: str = "") -> str:  # fmt: skip
        bundle = str(tmp_path / f"bundle-{name or ref}")
        unpack(images, ref, bundle)
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["process"]["args"] += args or []
        cfg["process"]["env"] += env or []
        if annotations:
            cfg.setdefault("annotations", {}).update(annotations)
        with open(path, "w") as f:
            json.dump(cfg, f)
        return bundle

    return make


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def signer_pki(tmp_path_factory) -> dict[str, str]:
    """A CA and the signing server's certificate for 127.0.0.1, made by openssl."""
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key, cert, key, csr = (str(d / n) for n in ("ca.pem", "ca.key", "server.pem", "server.key", "server.csr"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
            "-out", ca, "-days", "1", "-subj", "/CN=signing test CA")  # fmt: skip
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=signer")  # fmt: skip
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1",
            "-extfile", str(ext))  # fmt: skip
    return {"ca": ca, "cert": cert, "key": key}


class SigningServer:
    """`inclavare signing-server serve` with TLS and a tokens file; `node-1`'s token is in `token_file`."""

    def __init__(self, root: str, pki: dict[str, str]) -> None:
        self.root = root
        self.key = os.path.join(root, "signer.pem")
        self.public = inclavare("signing-server", "keygen", "--algorithm", "ed25519", self.key).stdout
        self.mrsigner = self.public.rsplit("MRSIGNER ", 1)[1].strip()
        self.token_file = os.path.join(root, "node-1.token")
        self.tokens = os.path.join(root, "tokens")
        line = inclavare("signing-server", "token", "node-1", "--out", self.token_file).stdout
        with open(self.tokens, "w") as f:
            f.write(line)
        self.audit = os.path.join(root, "audit.jsonl")
        ready = os.path.join(root, "ready")
        self.log = open(os.path.join(root, "server.log"), "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*INCLAVARE, "signing-server", "serve", "--key", self.key, "--listen", "127.0.0.1:0",
             "--tls-cert", pki["cert"], "--tls-key", pki["key"], "--tokens", self.tokens,
             "--audit-log", self.audit, "--ready-file", ready],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"signing server did not start: {self.log.read()}")
            time.sleep(0.05)
        with open(ready) as f:
            self.url = "https://" + f.read().strip()
        self.ca = pki["ca"]

    def audit_lines(self) -> list[dict]:
        with open(self.audit) as f:
            return [json.loads(line) for line in f]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def signing_server(tmp_path_factory, signer_pki):
    server = SigningServer(str(tmp_path_factory.mktemp("signer")), signer_pki)
    yield server
    server.stop()


@pytest.fixture
def carrier_config(tmp_path, signing_server):
    """carrier_config(token_file=...) -> a config.toml naming the signing server (node-1's token by default)."""

    def write(token_file: str | None = None) -> str:
        path = tmp_path / "config.toml"
        path.write_text(f"""[signature]
server_address = "{signing_server.url}"
ca_cert = "{signing_server.ca}"
token_file = "{token_file or signing_server.token_file}"
expected_signer = "{signing_server.mrsigner}"
node_key = "{tmp_path}/unused-node-key.pem"
""")
        return str(path)

    return write
