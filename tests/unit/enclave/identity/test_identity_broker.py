"""The manifest's [kbs] table: the key brokers an enclave trusts are part of what is measured."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

import pytest
from identity_data import WASM, sha

from inclavare.enclave.identity import ManifestError, dump_manifest, expand_trusted_files, measure, parse_manifest
from inclavare.enclave.identity.broker import normalize_url

PIN = base64.b64encode(hashlib.sha256(b"broker key").digest()).decode()
PINNED = (
    WASM.replace('trusted_files = ["/etc/app.conf"]', 'trusted_files = ["/etc/app.conf", "/etc/kbs-ca.pem"]')
    + f"""
[kbs]
urls = ["https://KBS-B.example:8443/", "https://kbs-a.example"]
cacert = "/etc/kbs-ca.pem"
pin_sha256 = ["{PIN}"]
"""
)


@pytest.fixture
def ca_rootfs(rootfs):
    with open(os.path.join(rootfs, "etc/kbs-ca.pem"), "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE-----\nCA one\n-----END CERTIFICATE-----\n")
    return rootfs


def test_the_table_is_parsed_and_normalised():
    pin = parse_manifest(PINNED).kbs
    assert pin is not None
    assert pin.urls == ("https://kbs-a.example:443", "https://kbs-b.example:8443")
    assert pin.cacert == "/etc/kbs-ca.pem"
    assert pin.pin_sha256 == (hashlib.sha256(b"broker key").digest(),)
    assert parse_manifest(WASM).kbs is None


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://kbs.example", "https://kbs.example:443"),
        ("HTTPS://Kbs.Example:8443/", "https://kbs.example:8443"),
        ("https://kbs.example:8443/tenant-a/", "https://kbs.example:8443/tenant-a"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("https://127.0.0.1:1234", "https://127.0.0.1:1234"),
    ],
)
def test_one_spelling_per_broker(url, normal):
    assert normalize_url(url) == normal


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080", "must be https"),
        ("ftp://kbs.example", "must be https"),
        ("https://user@kbs.example", "without user, query or fragment"),
        ("https://kbs.example/?x=1", "without user, query or fragment"),
        ("https://kbs.example/#top", "without user, query or fragment"),
        ("https:///path", "without user, query or fragment"),
        ("https://kbs.example:99999", "is not a URL"),
        ("https://kbs.example/a/../b", "only letters, digits"),
        ("https://kbs.example/a b", "only letters, digits"),
    ],
)
def test_what_is_not_a_broker_url(url, reason):
    with pytest.raises(ValueError, match=reason):
        normalize_url(url)


URL = 'urls = ["https://kbs.example"]\n'


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (URL, r"^m.toml: kbs: needs cacert or pin_sha256"),
        ('urls = []\npin_sha256 = ["PIN"]', r"^m.toml: kbs.urls: must name at least one broker$"),
        ('urls = ["http://kbs.example"]\npin_sha256 = ["PIN"]', r"^m.toml: kbs.urls\[0\]: 'http://kbs.example' must"),
        ('urls = "https://kbs.example"\npin_sha256 = ["PIN"]', r"^m.toml: kbs.urls: must be an array, not a string$"),
        (URL + 'cacert = "/etc/other.pem"', r"^m.toml: kbs.cacert: /etc/other.pem must be listed in trusted_files"),
        (URL + 'cacert = "etc/kbs-ca.pem"', r"^m.toml: kbs.cacert: 'etc/kbs-ca.pem' must be an absolute path$"),
        (URL + 'pin_sha256 = ["c2hvcnQ="]', r"^m.toml: kbs.pin_sha256\[0\]: must be base64 of a SHA-256"),
        (URL + 'pin_sha256 = ["PIN"]\ncacerts = "/x"', r"^m.toml: kbs.cacerts: unknown key$"),
    ],
)  # fmt: skip
def test_a_bad_table_is_one_located_error(table, message):
    text = PINNED[: PINNED.index("[kbs]")] + "[kbs]\n" + table.replace("PIN", PIN) + "\n"
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text, "m.toml")


def test_dump_round_trips(ca_rootfs):
    manifest = expand_trusted_files(parse_manifest(PINNED, "t.toml"), ca_rootfs)
    assert parse_manifest(dump_manifest(manifest), "t.toml") == manifest


def test_the_pinned_brokers_are_measured(ca_rootfs):
    """The measurement changes with every URL, the CA's path and bytes, and every key pin."""
    base = measure(parse_manifest(PINNED), ca_rootfs)
    seen = {base, measure(parse_manifest(WASM), ca_rootfs)}
    for old, new in [
        ('"https://kbs-a.example"]', '"https://kbs-a.example", "https://kbs-c.example"]'),
        ('"https://kbs-a.example"]', '"https://kbs-a.example:444"]'),
        ('"https://KBS-B.example:8443/", ', ""),
        (f'pin_sha256 = ["{PIN}"]', f'pin_sha256 = ["{PIN}", "{base64.b64encode(bytes(32)).decode()}"]'),
        (f'pin_sha256 = ["{PIN}"]', ""),
    ]:
        assert old in PINNED
        seen.add(measure(parse_manifest(PINNED.replace(old, new)), ca_rootfs))
    with open(os.path.join(ca_rootfs, "etc/kbs-ca.pem"), "ab") as f:
        f.write(b"another CA\n")
    seen.add(measure(parse_manifest(PINNED), ca_rootfs))
    assert len(seen) == 2 + 5 + 1


def test_spelling_and_order_of_the_urls_do_not_matter(ca_rootfs):
    same = '["https://kbs-a.example:443/", "https://kbs-b.example:8443", "https://kbs-a.example"]'
    respelled = PINNED.replace('["https://KBS-B.example:8443/", "https://kbs-a.example"]', same)
    assert measure(parse_manifest(respelled), ca_rootfs) == measure(parse_manifest(PINNED), ca_rootfs)


def test_known_answer_with_a_broker(rootfs):
    """An independent encoding of the document measure.py documents, with its "kbs" key."""

    def s(text: str) -> bytes:
        return b"S" + struct.pack(">I", len(text.encode())) + text.encode()

    def lst(*items: bytes) -> bytes:
        return b"L" + struct.pack(">I", len(items)) + b"".join(items)

    def dct(**items: bytes) -> bytes:
        keys = sorted(items, key=str.encode)
        return b"D" + struct.pack(">I", len(keys)) + b"".join(s(k) + items[k] for k in keys)

    text = ('runtime = "native"\nentrypoint = "/bin/app"\nmemory_limit = 4096\ntrusted_files = ["/bin/app"]\n'
            f'[kbs]\nurls = ["https://kbs.example"]\npin_sha256 = ["{PIN}"]\n')  # fmt: skip
    digest = bytes.fromhex(sha(b"\x7fELF app v1"))
    pin = hashlib.sha256(b"broker key").digest()
    document = dct(
        runtime=s("native"),
        entrypoint=s("/bin/app"),
        memory_limit=b"I" + struct.pack(">Q", 4096),
        argv=dct(policy=s("fixed"), values=lst(s("/bin/app"))),
        env=dct(fixed=dct(), passthrough=lst()),
        trusted_files=dct(**{"/bin/app": b"B" + struct.pack(">I", 32) + digest}),
        allowed_files=lst(),
        wasm=b"N",
        kbs=dct(
            urls=lst(s("https://kbs.example:443")), cacert=b"N", pin_sha256=lst(b"B" + struct.pack(">I", 32) + pin)
        ),
    )
    expected = hashlib.sha256(b"inclavare/enclave-measurement/v1\0" + document).digest()
    assert measure(parse_manifest(text), rootfs) == expected
