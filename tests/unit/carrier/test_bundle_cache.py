"""The carrier's bundle caches in a real epm: a second pod skips generation, measurement and signing;
nothing cached reaches a bundle unverified; the original's hashing faults are gone."""

from __future__ import annotations

import collections
import logging
import os
import shutil
import tempfile

import pytest

from conftest import load
from inclavare.carrier import MANIFEST, SIGNATURE, bundle_cache, flow, prepare
from inclavare.carrier.flow import OPTION_CONFIG
from inclavare.enclave.identity import KeySigner, verify_signature
from inclavare.testing.epm import Epm


@pytest.fixture
def epm(tmp_path):
    run = tempfile.mkdtemp(prefix="epm-", dir="/tmp")
    e = Epm(str(tmp_path / "epm-root"), os.path.join(run, "run")).start()
    yield e
    e.stop()
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def calls(monkeypatch):
    """Counts generation (expand), measurement and signing (sign_parsed), and the signer's key use."""
    counter: collections.Counter[str] = collections.Counter()

    def count(owner, name: str) -> None:
        real = getattr(owner, name)

        def counted(*args, **kwargs):
            counter[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    count(flow, "expand_trusted_files")
    count(flow, "sign_parsed")
    count(KeySigner, "sign")
    return counter


def cached(node_config, epm) -> str:
    return node_config(f'[epm]\nsocket = "{epm.socket}"')


def files_of(bundle: str) -> tuple[bytes, bytes]:
    root = os.path.join(bundle, "rootfs")
    with open(root + MANIFEST, "rb") as m, open(root + SIGNATURE, "rb") as s:
        return m.read(), s.read()


def keys_of(bundle: str, carrier: str = "wasm") -> bundle_cache.Keys:
    """The keys the carrier used for `bundle` (from what it wrote: the template is the manifest unpinned)."""
    from inclavare.enclave.identity import load_manifest
    from inclavare.enclave.identity.identity import signer_id

    root = os.path.join(bundle, "rootfs")
    manifest = load_manifest(root + MANIFEST)
    key = KeySigner.from_pem_file(os.path.join(os.path.dirname(bundle), "node-key.pem"))
    return bundle_cache.keys_for(carrier, _template(manifest), root, signer_id(key.public_key_der()))


def _template(manifest):
    import dataclasses

    files = tuple(dataclasses.replace(t, sha256=None) for t in manifest.trusted_files)
    wasm = manifest.wasm and dataclasses.replace(manifest.wasm, module_sha256=None)
    return dataclasses.replace(manifest, file=MANIFEST, trusted_files=files, wasm=wasm)


def test_a_second_pod_skips_generation_measurement_and_signing(bundle, node_config, epm, calls):
    config = cached(node_config, epm)
    first = bundle(name="pod-1")
    prepare(first, options={OPTION_CONFIG: config})
    assert calls == {"expand_trusted_files": 1, "sign_parsed": 1, "sign": 1}
    second = bundle(name="pod-2")
    prepare(second, options={OPTION_CONFIG: config})
    assert calls == {"expand_trusted_files": 1, "sign_parsed": 1, "sign": 1}  # nothing more
    assert files_of(second) == files_of(first)
    assert load(second)["annotations"] == load(first)["annotations"]
    identity = verify_signature(*(os.path.join(second, "rootfs") + p for p in (MANIFEST, SIGNATURE)),
                                os.path.join(second, "rootfs"))  # fmt: skip
    assert load(second)["annotations"]["enclave.runtime.args"].endswith(identity.signer.hex())


def test_the_cache_survives_an_epm_restart(bundle, node_config, epm, calls):
    config = cached(node_config, epm)
    prepare(bundle(name="pod-1"), options={OPTION_CONFIG: config})
    epm.restart()
    prepare(bundle(name="pod-2"), options={OPTION_CONFIG: config})
    assert calls["sign"] == 1


def test_levels_are_chained_in_epm(bundle, node_config, epm):
    b = bundle(name="pod-1")
    prepare(b, options={OPTION_CONFIG: cached(node_config, epm)})
    keys = keys_of(b)
    with epm.client() as c:
        assert keys.cache1[2] == c.get(keys.cache2).parent.ID
        assert keys.cache0[2] == c.get(keys.cache1).parent.ID
        assert [x.ID for x in c.list(bundle_cache.pool("wasm", 0))] == [keys.cache0[2]]


def test_another_pod_spec_of_the_same_image_is_built_anew(bundle, node_config, epm, calls):
    config = cached(node_config, epm)
    prepare(bundle(name="pod-1"), options={OPTION_CONFIG: config})
    other = bundle(["/app/hello.wasm", "two"], name="pod-2")
    prepare(other, options={OPTION_CONFIG: config})
    assert calls["sign"] == 2
    assert b'"two"' in files_of(other)[0]


def test_another_image_gets_its_own_cache0(bundle, node_config, epm, calls):
    """The original keyed cache0 by the pod's IMAGE_DIGEST, "" for every image that set none."""
    config = cached(node_config, epm)
    first = bundle(name="pod-1")
    prepare(first, options={OPTION_CONFIG: config})
    second = bundle(name="pod-2")
    with open(os.path.join(second, "rootfs", "app", "hello.wasm"), "ab") as f:
        f.write(b"\0")  # another image: one byte more in the module (a custom section's worth)
    prepare(second, options={OPTION_CONFIG: config})
    assert calls["sign"] == 2
    assert keys_of(first).cache0 != keys_of(second).cache0
    verify_signature(*(os.path.join(second, "rootfs") + p for p in (MANIFEST, SIGNATURE)),
                     os.path.join(second, "rootfs"))  # fmt: skip


def test_the_runtime_is_part_of_the_built_enclaves_id(bundle, node_config, epm, calls, monkeypatch):
    """The original meant to hash the LibOS into cache1 but hashed its config twice: a LibOS upgrade
    was served enclaves built for the old one. Here another runtime (version) is another cache1."""
    config = cached(node_config, epm)
    b = bundle(name="pod-1")
    prepare(b, options={OPTION_CONFIG: config})
    before = keys_of(b)
    monkeypatch.setattr(bundle_cache, "__version__", "99.0.0")
    after = keys_of(b)
    assert after.cache0 == before.cache0
    assert after.cache1 != before.cache1
    prepare(bundle(name="pod-2"), options={OPTION_CONFIG: config})
    assert calls["sign"] == 2  # built and signed again for the new runtime


def test_another_signer_signs_the_cached_manifest(bundle, node_config, epm, calls, tmp_path):
    prepare(bundle(name="pod-1"), options={OPTION_CONFIG: cached(node_config, epm)})
    other = node_config(f'[epm]\nsocket = "{epm.socket}"', node_key=str(tmp_path / "other-key.pem"))
    b = bundle(name="pod-2")
    prepare(b, options={OPTION_CONFIG: other})
    # The manifest came from cache1 (no generation), then it was measured and signed by the new key.
    assert calls == {"expand_trusted_files": 2, "sign_parsed": 2, "sign": 2}
    assert calls["expand_trusted_files"] == 2  # sign_parsed's own expansion: the pins checked, not regenerated
    root = os.path.join(b, "rootfs")
    verify_signature(root + MANIFEST, root + SIGNATURE, root)


def tamper(path: str, name: str, change) -> None:
    with open(os.path.join(path, name), "rb") as f:
        data = f.read()
    with open(os.path.join(path, name), "wb") as f:
        f.write(change(data))


def test_a_tampered_signature_never_reaches_the_bundle(bundle, node_config, epm, calls, caplog):
    config = cached(node_config, epm)
    first = bundle(name="pod-1")
    prepare(first, options={OPTION_CONFIG: config})
    keys = keys_of(first)
    tamper(epm.data_of(keys.cache2), "enclave.toml.sig", lambda d: d[:-1] + bytes([d[-1] ^ 1]))
    second = bundle(name="pod-2")
    with caplog.at_level(logging.WARNING, "inclavare.carrier"):
        prepare(second, options={OPTION_CONFIG: config})
    assert "refused and removed" in caplog.text
    assert calls["sign"] == 2  # signed again
    assert files_of(second) == files_of(first)  # the good signature (Ed25519 is deterministic), not the bad one
    with epm.client() as c:  # and the cache holds the good one again
        assert c.get(keys.cache2) is not None


def test_a_tampered_manifest_never_reaches_the_bundle(bundle, node_config, epm, calls, caplog):
    config = cached(node_config, epm)
    first = bundle(name="pod-1")
    prepare(first, options={OPTION_CONFIG: config})
    keys = keys_of(first)
    tamper(epm.data_of(keys.cache1), "enclave.toml", lambda d: d.replace(b'"one"', b'"evil"'))
    second = bundle(name="pod-2")
    prepare(second, options={OPTION_CONFIG: config})
    assert b"evil" not in files_of(second)[0]
    assert "refused and removed" in caplog.text
    assert calls["sign"] == 2


def test_a_signed_enclave_of_another_pod_spec_is_not_taken(bundle, node_config, epm, calls, caplog):
    """Validly signed, same files, but for other arguments: verification alone would pass it."""
    config = cached(node_config, epm)
    mine = bundle(["/app/hello.wasm", "mine"], name="pod-1")
    theirs = bundle(["/app/hello.wasm", "theirs"], name="pod-2")
    prepare(mine, options={OPTION_CONFIG: config})
    prepare(theirs, options={OPTION_CONFIG: config})
    k_mine, k_theirs = keys_of(mine), keys_of(theirs)
    for level, name in (("cache1", "enclave.toml"), ("cache2", "enclave.toml.sig")):
        shutil.copy(os.path.join(epm.data_of(getattr(k_theirs, level)), name),
                    os.path.join(epm.data_of(getattr(k_mine, level)), name))  # fmt: skip
    again = bundle(["/app/hello.wasm", "mine"], name="pod-3")
    prepare(again, options={OPTION_CONFIG: config})
    assert b'"mine"' in files_of(again)[0]
    assert "not the manifest this container's template expands to" in caplog.text


def test_epm_down_builds_as_without_caches(bundle, node_config, epm, calls, caplog):
    config = cached(node_config, epm)
    epm.stop()
    b = bundle(name="pod-1")
    with caplog.at_level(logging.DEBUG, "inclavare.carrier"):
        prepare(b, options={OPTION_CONFIG: config})
    assert calls["sign"] == 1
    root = os.path.join(b, "rootfs")
    verify_signature(root + MANIFEST, root + SIGNATURE, root)
    lines = [r for r in caplog.records if "bundle cache" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.DEBUG]
    assert "UNAVAILABLE" in lines[0].getMessage()


def test_a_cached_manifest_with_a_wrong_pin_is_rebuilt(bundle, node_config, epm, calls, caplog):
    """The template check leaves pins to verification; a pin that fails it discards the cached manifest too."""
    config = cached(node_config, epm)
    first = bundle(name="pod-1")
    prepare(first, options={OPTION_CONFIG: config})
    keys = keys_of(first)
    pin = dict(keys.files)["/app/hello.wasm"]
    tamper(epm.data_of(keys.cache1), "enclave.toml", lambda d: d.replace(pin.encode(), b"0" * 64))
    second = bundle(name="pod-2")
    prepare(second, options={OPTION_CONFIG: config})
    assert "refused and removed" in caplog.text
    assert files_of(second) == files_of(first)
    assert calls["sign"] == 2
