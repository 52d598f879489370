"""Encrypted images against a real KBS: the layer key is released only to an attested enclave.

The broker is ``inclavare kbs serve`` in a child process (inclavare.testing.kbs).
The owner wraps with the KEK from a file key store (wrapping needs only the
KEK); inside the "TEE", the key provider runs with ``--kbs`` and a signed
software enclave, attests (RCAR), and the KBS releases the KEK per its
resource policy. Evidence from a host key the KBS does not trust gets nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inclavare.image.build import build_image
from inclavare.image.keystore import FileKeyStore, ResourcePath

kbs_testing = pytest.importorskip("inclavare.testing.kbs")
pytest.importorskip("uvicorn")
from inclavare.kbs.admin_client import KbsAdmin  # noqa: E402

KID = "kbs:///default/key/image"
KEK = os.urandom(32)
UNLIMITED = "\n[rate_limit]\nenabled = false\n"


def _layer() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/secret.conf")
        data = b"released after attestation\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return kbs_testing.World.create(str(tmp_path_factory.mktemp("image-kbs")))


@pytest.fixture(scope="module")
def kbs(world):
    with kbs_testing.KbsProcess(world.config("image", extra=UNLIMITED)) as k:
        with KbsAdmin(k.url, world.admin_key) as admin:
            admin.set_resource("default/key/image", KEK)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        yield k


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp("owner")
    (base / "keys").mkdir()
    FileKeyStore(str(base / "keys")).put(ResourcePath.parse(KID), KEK)
    build_image(str(base / "img"), "plain", [(_layer(), "gzip")], {"Cmd": ["/bin/true"]})
    config = base / "owner.json"
    cmd = {"path": sys.executable, "args": ["-m", "inclavare.cli.keyprovider", "--keys", str(base / "keys")]}
    config.write_text(json.dumps({"key-providers": {"inclavare": {"cmd": cmd}}}))
    image(
        [
            "encrypt",
            "--keyprovider-config",
            str(config),
            "--encryption-key",
            f"provider:inclavare:{KID}",
            f"{base}/img:plain",
            f"{base}/img:enc",
        ]
    )
    return str(base / "img")


def image(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "inclavare.cli.tool._main", "image", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def tee_config(tmp_path, kbs, world, host_key: str) -> str:
    args = ["-m", "inclavare.cli.keyprovider", "--kbs", kbs.url, "--manifest", world.manifest, "--sig", world.sig]
    args += ["--rootfs", world.rootfs, "--host-key", host_key]
    path = tmp_path / "tee.json"
    path.write_text(json.dumps({"key-providers": {"inclavare": {"cmd": {"path": sys.executable, "args": args}}}}))
    return str(path)


def test_attested_enclave_gets_the_key_and_unpacks(tmp_path, kbs, world, encrypted) -> None:
    config = tee_config(tmp_path, kbs, world, f"{world.root}/host-key.pem")
    image(["unpack", "--keyprovider-config", config, f"{encrypted}:enc", str(tmp_path / "bundle")])
    assert (tmp_path / "bundle/rootfs/etc/secret.conf").read_bytes() == b"released after attestation\n"
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        released = [r for r in admin.audit(limit=1000) if r["event"] == "release"]
    assert any("default/key/image" in json.dumps(r) for r in released)


def test_untrusted_evidence_gets_nothing(tmp_path, kbs, world, encrypted) -> None:
    config = tee_config(tmp_path, kbs, world, str(tmp_path / "other-host-key.pem"))  # created fresh: not trusted
    done = image(["unpack", "--keyprovider-config", config, f"{encrypted}:enc", str(tmp_path / "bundle")], check=False)
    assert done.returncode == 1
    assert "no key provider could unwrap the layer key" in done.stderr
    assert "401" in done.stderr
    assert not (tmp_path / "bundle").exists()
