"""Interop with the real skopeo (and umoci): images encrypted by either side decrypt on the other.

Debian's skopeo 1.9.3 is built with ocicrypt 1.0.3, which predates key
providers (ocicrypt 1.1): it refuses ``--encryption-key provider:...`` with
"Provided protocol not recognized". What it does share with us is the layer
format (AES_256_CTR_HMAC_SHA256, the pubopts and private options JSON,
media types) and the JWE recipient scheme, so both directions are tested
through JWE recipients, with the private key held by our key store and
unwrapped by our key provider. The provider-protocol test runs when the
installed skopeo knows key providers and is skipped, saying why, otherwise.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inclavare.image.build import build_image, tar_directory
from inclavare.image.keystore import FileKeyStore, ResourcePath
from inclavare.image.layout import Layout
from inclavare.testing.bundles import build_rootfs

SKOPEO = shutil.which("skopeo")
UMOCI = shutil.which("umoci")
pytestmark = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
KEK_ID = "kbs:///default/key/1"
JWE_ID = "kbs:///default/jwe/1"


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _m(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = (
        kind,
        len(data),
        1_700_000_000,
        0o755 if kind == tarfile.DIRTYPE else 0o644,
    )
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A busybox image in two layouts (gzip+zstd+plain layers; gzip-only for umoci), keys and a provider config."""
    base = tmp_path_factory.mktemp("image")
    rootfs = build_rootfs(str(base / "busybox"))
    upper = _tar(
        _m(".wh..rune-test-rootfs"),
        _m("home/test", tarfile.DIRTYPE, uid=10, gid=10, mode=0o750),
        _m("home/test/.wh..wh..opq"),
        _m("home/test/notes", data=b"confidential\n", uid=10, gid=10, mode=0o600),
        _m("usr/local/bin/suid", data=b"#!/bin/sh\n", mode=0o4755),
        _m("usr/local/bin/again", tarfile.LNKTYPE, linkname="usr/local/bin/suid"),
        _m("run/fifo", tarfile.FIFOTYPE, mode=0o620),
    )
    top = _tar(_m("etc/motd", data=b"encrypted hello\n", mode=0o444))
    config = {"Cmd": ["/bin/sh", "-c", "cat /etc/motd"], "Env": ["A=1"], "User": "test"}
    layers = [(tar_directory(rootfs), "gzip"), (upper, "zstd"), (top, "")]
    build_image(str(base / "plain"), "v1", layers, config)
    build_image(str(base / "plain-gz"), "v1", [(layers[0][0], "gzip"), (upper, "gzip"), (top, "")], config)
    key = rsa.generate_private_key(65537, 2048)
    (base / "pub.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (base / "priv.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (base / "keys").mkdir()
    store = FileKeyStore(str(base / "keys"))
    store.put(ResourcePath.parse(KEK_ID), os.urandom(32))
    store.put(ResourcePath.parse(JWE_ID), (base / "priv.pem").read_bytes())
    cmd = {"path": sys.executable, "args": ["-m", "inclavare.cli.keyprovider", "--keys", str(base / "keys")]}
    (base / "ocicrypt.json").write_text(json.dumps({"key-providers": {"inclavare": {"cmd": cmd}}}))
    return {"base": str(base), "config": str(base / "ocicrypt.json")}


def skopeo(world: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCICRYPT_KEYPROVIDER_CONFIG": world["config"]}
    done = subprocess.run(
        [SKOPEO or "skopeo", "--insecure-policy", "copy", "-q", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def encrypt_for_both(world: dict, source: str, dest: str) -> None:
    """Encrypt `source` (a tag-v1 layout under the world's base) for our key
    provider and for the world's JWE key, so both sides can decrypt it."""
    base = world["base"]
    inclavare("encrypt", "--keyprovider-config", world["config"], "--encryption-key", f"provider:inclavare:{KEK_ID}",
              "--encryption-key", f"jwe:{base}/pub.pem", f"{base}/{source}:v1", f"{dest}:v1")  # fmt: skip


def inclavare(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
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


def tree(root: str) -> dict[str, tuple[object, ...]]:
    """Every entry below `root`: type, mode, owner, and content or link target."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                what: object = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = None
            out[os.path.relpath(path, root)] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                what,
            )
    return out


def layer_blobs(layout: str, ref: str) -> list[bytes]:
    lay = Layout(layout)
    return [Path(lay.blob_path(d.digest)).read_bytes() for d in lay.manifest(lay.resolve(ref)).layers]


def test_skopeo_encrypted_image_unpacks_through_our_provider(world, tmp_path) -> None:
    base = world["base"]
    enc = str(tmp_path / "enc")
    skopeo(world, "--encryption-key", f"jwe:{base}/pub.pem", f"oci:{base}/plain:v1", f"oci:{enc}:v1")
    refused = inclavare(
        "unpack", "--keyprovider-config", world["config"], f"{enc}:v1", str(tmp_path / "no"), check=False
    )
    assert refused.returncode == 1
    assert "no key provider could unwrap" in refused.stderr or "no configured key provider" in refused.stderr
    assert not (tmp_path / "no").exists()
    inclavare(
        "unpack",
        "--keyprovider-config",
        world["config"],
        "--decryption-key",
        f"provider:inclavare:{JWE_ID}",
        f"{enc}:v1",
        str(tmp_path / "b"),
    )
    inclavare("unpack", f"{base}/plain:v1", str(tmp_path / "ref"))
    got = tree(str(tmp_path / "b/rootfs"))
    assert got == tree(str(tmp_path / "ref/rootfs"))
    assert (tmp_path / "b/rootfs/etc/motd").read_bytes() == b"encrypted hello\n"
    assert ".rune-test-rootfs" not in got
    assert [k for k in got if k.startswith("home/test/")] == ["home/test/notes"]
    owner = (10, 10) if os.geteuid() == 0 else (os.geteuid(), os.getegid())  # rootless: no chown
    assert got["home/test/notes"][2:4] == owner
    assert got["usr/local/bin/suid"][1] == 0o4755
    assert (
        os.lstat(tmp_path / "b/rootfs/usr/local/bin/again").st_ino
        == os.lstat(tmp_path / "b/rootfs/usr/local/bin/suid").st_ino
    )
    spec = json.loads((tmp_path / "b/config.json").read_text())
    assert spec["process"]["args"] == ["/bin/sh", "-c", "cat /etc/motd"]
    assert spec["process"]["user"]["uid"] == 10


def test_our_encrypted_image_decrypts_with_skopeo(world, tmp_path) -> None:
    base = world["base"]
    enc, dec = str(tmp_path / "enc"), str(tmp_path / "dec")
    encrypt_for_both(world, "plain", enc)
    lay = Layout(enc)
    layers = lay.manifest(lay.resolve("v1")).layers
    assert [d.media_type.rsplit(".", 1)[-1] for d in layers] == [
        "tar+gzip+encrypted",
        "tar+zstd+encrypted",
        "tar+encrypted",
    ]
    assert all("org.opencontainers.image.enc.keys.provider.inclavare" in d.annotations for d in layers)
    assert layer_blobs(enc, "v1") != layer_blobs(f"{base}/plain", "v1")
    skopeo(world, "--decryption-key", f"{base}/priv.pem", f"oci:{enc}:v1", f"oci:{dec}:v1")
    assert layer_blobs(dec, "v1") == layer_blobs(f"{base}/plain", "v1")
    lay_dec, lay_src = Layout(dec), Layout(f"{base}/plain")
    assert [d.digest for d in lay_dec.manifest(lay_dec.resolve("v1")).layers] == [
        d.digest for d in lay_src.manifest(lay_src.resolve("v1")).layers
    ]
    # and our own unpack takes the same encrypted image through the KEK packet
    inclavare("unpack", "--keyprovider-config", world["config"], f"{enc}:v1", str(tmp_path / "b"))
    assert (tmp_path / "b/rootfs/home/test/notes").read_bytes() == b"confidential\n"


def test_skopeo_rejects_a_tampered_layer_we_encrypted(world, tmp_path) -> None:
    base = world["base"]
    enc = tmp_path / "enc"
    inclavare("encrypt", "--encryption-key", f"jwe:{base}/pub.pem", f"{base}/plain:v1", f"{enc}:v1")
    lay = Layout(str(enc))
    man = lay.read_json(lay.resolve("v1"))
    blob = Path(lay.blob_path(man["layers"][2]["digest"]))
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    digest, size = lay.write_blob([bytes(data)])
    man["layers"][2].update(digest=digest, size=size)
    lay.tag(lay.write_json(man, "application/vnd.oci.image.manifest.v1+json"), "forged")
    done = skopeo(
        world, "--decryption-key", f"{base}/priv.pem", f"oci:{enc}:forged", f"oci:{tmp_path}/dec:v1", check=False
    )
    assert done.returncode != 0
    assert "hmac" in done.stderr.lower()


@pytest.mark.root
@pytest.mark.skipif(UMOCI is None, reason="umoci is not installed")
def test_umoci_agrees_on_the_rootfs(world, tmp_path) -> None:
    base = world["base"]
    enc, dec = str(tmp_path / "enc"), str(tmp_path / "dec")
    encrypt_for_both(world, "plain-gz", enc)
    skopeo(world, "--decryption-key", f"{base}/priv.pem", f"oci:{enc}:v1", f"oci:{dec}:v1")
    done = subprocess.run(
        [UMOCI or "umoci", "unpack", "--image", f"{dec}:v1", str(tmp_path / "umoci")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    inclavare("unpack", "--keyprovider-config", world["config"], f"{enc}:v1", str(tmp_path / "ours"))
    assert tree(str(tmp_path / "ours/rootfs")) == tree(str(tmp_path / "umoci/rootfs"))


def _skopeo_knows_key_providers(world: dict[str, str], tmp_path: Path) -> bool:
    done = skopeo(
        world,
        "--encryption-key",
        f"provider:inclavare:{KEK_ID}",
        f"oci:{world['base']}/plain:v1",
        f"oci:{tmp_path}/probe:v1",
        check=False,
    )
    return "Provided protocol not recognized" not in done.stderr


def test_key_provider_protocol_with_skopeo(world, tmp_path) -> None:
    if not _skopeo_knows_key_providers(world, tmp_path):
        pytest.skip("this skopeo's ocicrypt has no key provider support (Debian's 1.9.3 links ocicrypt 1.0.3)")
    base = world["base"]
    inclavare("unpack", "--keyprovider-config", world["config"], f"{tmp_path}/probe:v1", str(tmp_path / "b"))
    assert (tmp_path / "b/rootfs/etc/motd").read_bytes() == b"encrypted hello\n"
    inclavare(
        "encrypt",
        "--keyprovider-config",
        world["config"],
        "--encryption-key",
        f"provider:inclavare:{KEK_ID}",
        f"{base}/plain:v1",
        f"{tmp_path}/enc:v1",
    )
    skopeo(
        world, "--decryption-key", f"provider:inclavare:{KEK_ID}", f"oci:{tmp_path}/enc:v1", f"oci:{tmp_path}/dec:v1"
    )
    assert layer_blobs(f"{tmp_path}/dec", "v1") == layer_blobs(f"{base}/plain", "v1")
