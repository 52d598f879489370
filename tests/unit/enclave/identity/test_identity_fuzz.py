"""Hypothesis fuzzing of every parser here: only this package's errors may escape."""

from __future__ import annotations

import json
from collections.abc import Callable

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identity_data import NATIVE, WASM

from inclavare.enclave.identity import (
    EnclaveIdentity,
    HostSecret,
    IdentityError,
    ManifestError,
    SealError,
    SignatureError,
    parse_manifest,
    sigfile,
    unseal,
)
from inclavare.enclave.identity._codec import encode
from inclavare.enclave.identity.sealing import MAGIC

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
ME = EnclaveIdentity(bytes(32), bytes(range(32)), 1, 1, False)
SECRET = HostSecret(b"s" * 32)

KEYS = [
    *("runtime", "entrypoint", "memory_limit", "isv_prod_id", "isv_svn", "debug", "allowed_files"),
    *("trusted_files", "argv", "env", "wasm", "policy", "values", "fixed", "passthrough", "path", "sha256"),
    *("module", "module_sha256", "max_memory_pages", "fuel", "epoch_deadline", "preopened_dirs", "guest"),
    *("read_only", "native", "A", "/bin/app"),
]
# \x85 (NEL) and \u2028 end a line too (str.splitlines, many log viewers)
key = st.one_of(
    st.sampled_from(KEYS), st.text(max_size=8), st.sampled_from(["a\nb", "\x1b[31m", "tab\t", "a\x85b", "a\u2028b"])
)
scalar = st.one_of(
    st.sampled_from(["native", "wasm", "/bin/app", "/app/main.wasm", "fixed", "host", "64M", "a" * 64, "/x/../y"]),
    st.sampled_from(["/bin/app\n", "line\nbreak", "\r", "/a\x7f"]),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=4)),
    max_leaves=12,
)


def toml_value(v: object) -> str:
    """Inline TOML for the generated value (JSON strings are TOML basic strings for this alphabet)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(i) for i in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(i)}" for k, i in v.items()) + "}"


def outcome(call: Callable[[], object], kind: type[IdentityError] = IdentityError) -> str:
    """ "" on success, else the message of the expected error; any other exception fails the test."""
    try:
        call()
    except kind as exc:
        return str(exc)
    return ""


def one_line(message: str, prefix: str) -> bool:
    return not message or (message.startswith(prefix) and len(message.splitlines()) == 1)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    assert one_line(outcome(lambda: parse_manifest(text), ManifestError), "enclave.manifest.toml: ")


@FUZZ
@given(st.dictionaries(key, value, max_size=8))
def test_arbitrary_documents(doc):
    text = "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items())
    assert one_line(outcome(lambda: parse_manifest(text), ManifestError), "enclave.manifest.toml: ")


def test_unicode_line_breaks_in_a_key_stay_on_the_line():
    """The identity layer escaped only C0 controls; NEL and U+2028 broke its one-line errors."""
    for name in ("a\x85b", "a\u2028b", "a\x9bb"):
        message = outcome(lambda name=name: parse_manifest(f"{json.dumps(name)} = 1"), ManifestError)
        assert message == f"enclave.manifest.toml: {name.encode('unicode_escape').decode()}: unknown key"


@FUZZ
@given(st.sampled_from([NATIVE, WASM]), st.data())
def test_mutated_valid_manifests(base, data):
    lines = base.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    if "=" in lines[index]:
        name = lines[index].split("=", 1)[0]
        lines[index] = f"{name}= {toml_value(data.draw(value))}"
    assert one_line(outcome(lambda: parse_manifest("\n".join(lines)), ManifestError), "enclave.manifest.toml: ")


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=120).map(lambda b: MAGIC + b"\x01" + b)))
def test_blob_parser(blob):
    assert one_line(outcome(lambda: unseal(ME, blob, secret=SECRET), SealError), "sealed blob: ")


cbor_value = st.recursive(
    st.one_of(st.integers(-(2**65), 2**65), st.binary(max_size=40), st.text(max_size=10), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=6)),
    max_leaves=10,
)
sig_keys = st.sampled_from(["format", "version", "algorithm", "signer", "body", "signature", "x"])


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.dictionaries(sig_keys, cbor_value, max_size=7).map(cbor2.dumps)))
def test_signature_file_parser(raw):

    def parse() -> None:
        sig = sigfile.decode(raw, "s.sig")
        sigfile.identity_of(sig, "s.sig")
        sigfile.check_signature(sig, "s.sig")

    assert one_line(outcome(parse, SignatureError), "s.sig: ")


codec_value = st.recursive(
    st.one_of(st.integers(0, 2**64 - 1), st.binary(max_size=8), st.text(max_size=4), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)


def typed(v: object) -> object:
    """`v` with types made visible, so True and 1 (equal in Python) compare unequal."""
    if isinstance(v, list):
        return ("list", [typed(i) for i in v])
    if isinstance(v, dict):
        return ("dict", sorted((k, typed(i)) for k, i in v.items()))
    return (type(v).__name__, v)


@FUZZ
@given(codec_value, codec_value)
def test_canonical_encoding_is_injective(a, b):
    assert (encode(a) == encode(b)) == (typed(a) == typed(b))
