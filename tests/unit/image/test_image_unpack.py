"""unpack and encrypt end to end on layouts built here: digests, diff_ids, decryption, config.json."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from image_helpers import KID, entry, make_tar

from inclavare.image import mediatypes as mt
from inclavare.image.build import build_image
from inclavare.image.encrypt import encrypt
from inclavare.image.errors import DecryptionError, DigestMismatch, KeyProviderError, LayoutError, UnsafeArchive
from inclavare.image.layout import Layout, split_ref
from inclavare.image.providers import Unwrapper, load_config, parse_key_options
from inclavare.image.unpack import unpack

LOWER = make_tar(
    entry("bin", "dir"),
    entry("bin/tool", data=b"#!/bin/sh\n", mode=0o755),
    entry("etc", "dir"),
    entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
    entry("etc/group", data=b"root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:other,app\n"),
    entry("gone", data=b"old"),
)
UPPER = make_tar(entry(".wh.gone"), entry("etc/motd", data=b"hi\n"))
CONFIG = {
    "Entrypoint": ["/bin/tool"],
    "Cmd": ["--flag"],
    "Env": ["A=1"],
    "WorkingDir": "/srv",
    "User": "app",
    "Labels": {"l": "v"},
    "StopSignal": "SIGTERM",
}


@pytest.fixture
def image(tmp_path) -> str:
    path = str(tmp_path / "img")
    build_image(path, "v1", [(LOWER, "gzip"), (UPPER, "zstd")], CONFIG)
    return path


def manifest_of(path: str, ref: str = "v1") -> dict:
    layout = Layout(path)
    return layout.read_json(layout.resolve(ref))


def test_plain_unpack_and_config(image, tmp_path) -> None:
    bundle = tmp_path / "b"
    result = unpack(image, "v1", str(bundle), rootless=True)
    assert (result.layers, result.decrypted) == (2, 0)
    root = bundle / "rootfs"
    assert sorted(os.listdir(root)) == ["bin", "etc"]
    assert (root / "etc/motd").read_bytes() == b"hi\n"
    spec = json.loads((bundle / "config.json").read_text())
    proc = spec["process"]
    assert proc["args"] == ["/bin/tool", "--flag"]
    assert proc["cwd"] == "/srv"
    assert proc["terminal"] is False
    assert proc["env"][1:] == ["A=1"]
    assert proc["env"][0].startswith("PATH=")
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert spec["annotations"]["l"] == "v"
    assert spec["annotations"]["org.opencontainers.image.stopSignal"] == "SIGTERM"
    assert spec["root"] == {"path": "rootfs", "readonly": False}
    assert any(ns["type"] == "user" for ns in spec["linux"]["namespaces"])  # rootless template


@pytest.mark.parametrize(
    ("user", "expect"),
    [("0", {"uid": 0, "gid": 0}), ("app:wheel", {"uid": 1000, "gid": 10}), ("1234:55", {"uid": 1234, "gid": 55})],
)
def test_user_forms(tmp_path, user, expect) -> None:
    build_image(str(tmp_path / "i"), "t", [(LOWER, "")], {"User": user})
    unpack(str(tmp_path / "i"), "t", str(tmp_path / "b"), rootless=True)
    assert json.loads((tmp_path / "b/config.json").read_text())["process"]["user"] == expect


def test_unknown_user_is_refused_and_cleaned_up(tmp_path) -> None:
    build_image(str(tmp_path / "i"), "t", [(LOWER, "")], {"User": "nobody"})
    with pytest.raises(LayoutError, match=r"config\.User: user 'nobody' is not in"):
        unpack(str(tmp_path / "i"), "t", str(tmp_path / "b"), rootless=True)
    assert not (tmp_path / "b").exists()


def corrupt(path: str, digest: str, how: str) -> None:
    blob = os.path.join(path, "blobs", *digest.split(":"))
    data = bytearray(Path(blob).read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 1
    else:
        data += b"\0"
    os.chmod(blob, 0o644)
    Path(blob).write_bytes(bytes(data))


@pytest.mark.parametrize(("how", "field"), [("flip", "digest"), ("grow", "size")])
def test_blob_mismatch_is_refused_before_writing(image, tmp_path, how, field) -> None:
    layer = manifest_of(image)["layers"][1]["digest"]
    corrupt(image, layer, how)
    with pytest.raises(DigestMismatch, match=f"{layer}: {field}:"):
        unpack(image, "v1", str(tmp_path / "b"), rootless=True)
    assert not (tmp_path / "b").exists()


def test_diff_id_mismatch_is_refused(tmp_path) -> None:
    path = str(tmp_path / "i")
    build_image(path, "t", [(LOWER, "gzip")])
    layout = Layout(path)
    man = layout.read_json(layout.resolve("t"))
    cfg = layout.read_json(layout.manifest(layout.resolve("t")).config)
    cfg["rootfs"]["diff_ids"] = ["sha256:" + hashlib.sha256(b"other").hexdigest()]
    man["config"] = layout.write_json(cfg, mt.CONFIG).to_json()
    layout.tag(layout.write_json(man, mt.MANIFEST), "t")
    with pytest.raises(DigestMismatch, match=r"rootfs\.diff_ids: uncompressed layer does not match"):
        unpack(path, "t", str(tmp_path / "b"), rootless=True)
    assert not (tmp_path / "b").exists()


def test_layout_errors(tmp_path, image) -> None:
    with pytest.raises(LayoutError, match="oci-layout: cannot read"):
        unpack(str(tmp_path), None, str(tmp_path / "b"))
    with pytest.raises(LayoutError, match="no image tagged 'v2'"):
        unpack(image, "v2", str(tmp_path / "b"))
    build_image(image, "v3", [(UPPER, "")])
    with pytest.raises(LayoutError, match="2 images match; name a tag"):
        unpack(image, None, str(tmp_path / "b"))
    (tmp_path / "exists" / "rootfs").mkdir(parents=True)
    with pytest.raises(LayoutError, match="already exists"):
        unpack(image, "v1", str(tmp_path / "exists"))
    assert split_ref("/a/b:tag") == ("/a/b", "tag")
    assert split_ref("/a:b/c") == ("/a:b/c", None)


def encrypted(image: str, provider_config: str) -> str:
    params, _ = parse_key_options([f"provider:inclavare:{KID}"])
    encrypt(image, "v1", image, "enc", load_config(provider_config), params, [])
    return image


def test_encrypt_then_unpack_through_the_provider(image, provider_config, tmp_path) -> None:
    encrypted(image, provider_config)
    man = manifest_of(image, "enc")
    assert [layer["mediaType"] for layer in man["layers"]] == [
        mt.LAYER_TAR + "+gzip+encrypted",
        mt.LAYER_TAR + "+zstd+encrypted",
    ]
    assert all(mt.PROVIDER_PREFIX + "inclavare" in layer["annotations"] for layer in man["layers"])
    with pytest.raises(DecryptionError, match="layer is encrypted: name a key provider"):
        unpack(image, "enc", str(tmp_path / "b"))
    result = unpack(image, "enc", str(tmp_path / "b"), Unwrapper(load_config(provider_config), {}), rootless=True)
    assert result.decrypted == 2
    assert (tmp_path / "b/rootfs/etc/motd").read_bytes() == b"hi\n"


def test_tampered_ciphertext_is_refused_before_writing(image, provider_config, tmp_path) -> None:
    encrypted(image, provider_config)
    layout = Layout(image)
    man = manifest_of(image, "enc")
    blob = layout.blob_path(man["layers"][0]["digest"])
    data = bytearray(Path(blob).read_bytes())
    data[10] ^= 4
    digest, size = layout.write_blob([bytes(data)])
    man["layers"][0].update(digest=digest, size=size)  # a consistent manifest around a forged blob
    layout.tag(layout.write_json(man, mt.MANIFEST), "forged")
    with pytest.raises(DecryptionError, match="hmac: layer ciphertext does not authenticate"):
        unpack(image, "forged", str(tmp_path / "b"), Unwrapper(load_config(provider_config), {}), rootless=True)
    assert not (tmp_path / "b").exists()


def test_wrong_key_store_cannot_unwrap(image, provider_config, tmp_path) -> None:
    encrypted(image, provider_config)
    cfg = json.loads(Path(provider_config).read_text())
    other = tmp_path / "other" / "default" / "key"
    other.mkdir(parents=True)
    (other / "1").write_bytes(os.urandom(32))
    cfg["key-providers"]["inclavare"]["cmd"]["args"][-1] = str(tmp_path / "other")
    (tmp_path / "other.json").write_text(json.dumps(cfg))
    with pytest.raises(
        DecryptionError, match="no key provider could unwrap the layer key: key provider inclavare: exited 1"
    ):
        unpack(image, "enc", str(tmp_path / "b"), Unwrapper(load_config(str(tmp_path / "other.json")), {}))
    assert not (tmp_path / "b").exists()


def test_provider_config_errors(tmp_path) -> None:
    (tmp_path / "c.json").write_text('{"key-providers": {"x": {"cmd": {"path": 3}}}}')
    with pytest.raises(KeyProviderError, match=r"key-providers\.x\.cmd\.path: must be a string"):
        load_config(str(tmp_path / "c.json"))
    (tmp_path / "g.json").write_text('{"key-providers": {"g": {"grpc": "127.0.0.1:1"}}}')
    assert load_config(str(tmp_path / "g.json")) == {}
    with pytest.raises(KeyProviderError, match="expected provider:<name>"):
        parse_key_options(["pgp:someone"])


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_garbage_compressed_layer_is_a_clean_error(tmp_path, compression) -> None:
    path = str(tmp_path / "i")
    build_image(path, "t", [(LOWER, compression)])
    layout = Layout(path)
    man = layout.read_json(layout.resolve("t"))
    garbage = (b"\x1f\x8b\x08\x00" if compression == "gzip" else b"\x28\xb5\x2f\xfd") + os.urandom(600)
    digest, size = layout.write_blob([garbage])
    man["layers"][0].update(digest=digest, size=size)
    layout.tag(layout.write_json(man, mt.MANIFEST), "t")
    with pytest.raises(LayoutError, match="cannot decompress"):
        unpack(path, "t", str(tmp_path / "b"), rootless=True)
    assert not (tmp_path / "b").exists()


def test_bundle_is_private_and_decompression_is_bounded(image, tmp_path) -> None:
    """The rootfs may hold setuid-root files and device nodes: the bundle
    around it is 0700 (made so, or made so if it existed). A layer stream
    bigger than --max-size stops there and leaves nothing behind."""
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    (existing / "mine").write_text("kept")
    unpack(image, "v1", str(existing), rootless=True)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700
    assert (existing / "rootfs/etc/motd").exists()
    with pytest.raises(UnsafeArchive, match="layers decompress to more than 4096 bytes"):
        unpack(image, "v1", str(tmp_path / "small"), rootless=True, max_bytes=4096)
    assert not (tmp_path / "small").exists()


def test_huge_tar_extension_header_is_refused_before_it_is_read(tmp_path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("n" * (2 << 20))
        tar.addfile(info, io.BytesIO(b""))
    path = str(tmp_path / "i")
    build_image(path, "t", [(buf.getvalue(), "gzip")])
    with pytest.raises(UnsafeArchive, match=r"extension header of 2097153 bytes \(over 1048576\)"):
        unpack(path, "t", str(tmp_path / "b"), rootless=True)
    assert not (tmp_path / "b").exists()


def test_blob_swapped_after_its_check_is_not_what_gets_applied(image, tmp_path, monkeypatch) -> None:
    """The pre-pass checks each blob; the apply pass reads the same open file,
    not whatever a writer of the layout put at the path in between."""
    import importlib

    unpack_mod = importlib.import_module("inclavare.image.unpack")  # the package's `unpack` is the function
    checked = unpack_mod._prepass

    def check_then_swap(lay, plan):
        fd = checked(lay, plan)
        path = lay.blob_path(plan.desc.digest)
        with open(path + ".new", "wb") as f:
            f.write(b"swapped in after the check")
        os.replace(path + ".new", path)
        return fd

    monkeypatch.setattr(unpack_mod, "_prepass", check_then_swap)
    unpack(image, "v1", str(tmp_path / "b"), rootless=True)
    assert (tmp_path / "b/rootfs/etc/motd").read_bytes() == b"hi\n"


def test_cli_usage_errors(tmp_path, capsys) -> None:
    from inclavare.cli.tool._main import main

    assert main(["image", "encrypt", "--encryption-key", "jwe:/nonexistent.pem", "a:b", "c:d"]) == 1
    assert "nonexistent.pem" in capsys.readouterr().err
    assert main(["image", "encrypt", "--encryption-key", "provider:x:y", f"{tmp_path}:b", str(tmp_path / "out")]) == 1
    assert "needs a tag" in capsys.readouterr().err
    assert main(["image", "unpack", "--decryption-key", "jwe:k.pem", "a:b", "c"]) == 1
    assert "provider:NAME" in capsys.readouterr().err


def test_cli_malformed_layer_is_one_line_and_nothing_is_left(tmp_path, capsys) -> None:
    """A PAX mtime=nan used to end the unpack in a ValueError traceback."""
    from image_helpers import end, header, pax

    from inclavare.cli.tool._main import main

    path = str(tmp_path / "i")
    build_image(path, "t", [(pax({"mtime": b"nan"}) + header(b"etc/evil") + end(), "gzip")])
    assert main(["image", "unpack", "--rootless", f"{path}:t", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("inclavare image: layer 0 (sha256:")
    assert err.endswith("): etc/evil: pax mtime 'nan' is not a time (decimal seconds, 0 to 8589934591)\n")
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="trusted.* xattrs need root")
def test_cli_keep_privileged_xattrs(tmp_path, capsys) -> None:
    from inclavare.cli.tool._main import main

    info, data = entry("f", data=b"x")
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    path = str(tmp_path / "i")
    build_image(path, "t", [(make_tar((info, data)), "")])
    assert main(["image", "unpack", f"{path}:t", str(tmp_path / "b")]) == 0
    assert "xattr trusted.overlay.redirect dropped from 1 entries" in capsys.readouterr().err
    assert "trusted.overlay.redirect" not in os.listxattr(tmp_path / "b/rootfs/f")
    assert main(["image", "unpack", "--keep-privileged-xattrs", f"{path}:t", str(tmp_path / "c")]) == 0
    assert os.getxattr(tmp_path / "c/rootfs/f", "trusted.overlay.redirect") == b"/etc"
