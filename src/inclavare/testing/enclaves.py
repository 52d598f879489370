"""Signed software enclaves for tests and the demo: the sample WASI module
(samples/build/hello.wasm, built by `make setup`) in a busybox bundle, its
manifest expanded and signed with the identity layer's own API."""

from __future__ import annotations

import json
import os
import shutil

from cryptography.hazmat.primitives.asymmetric import ed25519

from ..enclave.identity import EnclaveIdentity, KeySigner, sign_manifest, verify_signature, write_signature
from ..enclave.identity.expand import dump_manifest, expand_trusted_files
from ..enclave.identity.manifest import parse_manifest
from .bundles import base_config, make_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SAMPLES = os.path.join(ROOT, "samples")
MANIFEST = "/app/hello-wasm.toml"


def wasm_bundle(
    directory: str,
    key: ed25519.Ed25519PrivateKey,
    rootfs_cache: str | None = None,
    args: list[str] | None = None,
    runtime_args: str = "",
    variant: bytes = b"",
) -> tuple[str, EnclaveIdentity]:
    """A bundle running /app/hello.wasm in the `wasm` runtime, signed by `key`.

    `variant` goes into a custom section appended to the module: another
    module that runs the same, with another measurement."""
    module = os.path.join(SAMPLES, "build", "hello.wasm")
    if not os.path.exists(module):
        raise FileNotFoundError(f"{module}: build the samples first (make setup, or make -C samples)")
    bundle = make_bundle(directory, base_config(args or ["/app/hello.wasm"]), rootfs_cache)
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "app"), exist_ok=True)
    shutil.copy2(module, os.path.join(rootfs, "app", "hello.wasm"))
    if variant:
        # A custom section (id 0): size, name length, name, payload (WebAssembly core spec 5.5.3).
        name = b"inclavare-variant"
        body = bytes([len(name)]) + name + variant
        with open(os.path.join(rootfs, "app", "hello.wasm"), "ab") as f:
            f.write(b"\x00" + _leb128(len(body)) + body)
    with open(os.path.join(SAMPLES, "wasm", "hello.manifest.toml")) as f:
        template = parse_manifest(f.read(), "hello.manifest.toml")
    manifest = rootfs + MANIFEST
    with open(manifest, "w") as f:
        f.write(dump_manifest(expand_trusted_files(template, rootfs)))
    write_signature(sign_manifest(manifest, rootfs, KeySigner(key)), manifest + ".sig")
    set_enclave(bundle, runtime_args)
    return bundle, verify_signature(manifest, manifest + ".sig", rootfs)


NATIVE_MANIFEST = "/app/hello-native.toml"


def native_bundle(directory: str, key: ed25519.Ed25519PrivateKey, rootfs_cache: str | None = None,
                  args: list[str] | None = None) -> tuple[str, EnclaveIdentity]:  # fmt: skip
    """A bundle running the static sample program (samples/build/hello-native) as
    /app/hello in the `native` runtime, its manifest (samples/native/hello.manifest.toml)
    expanded and signed by `key`."""
    program = os.path.join(SAMPLES, "build", "hello-native")
    if not os.path.exists(program):
        raise FileNotFoundError(f"{program}: build the samples first (make setup, or make -C samples)")
    bundle = make_bundle(directory, base_config(args or ["/app/hello"]), rootfs_cache)
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "app"), exist_ok=True)
    shutil.copy2(program, os.path.join(rootfs, "app", "hello"))
    os.chmod(os.path.join(rootfs, "app", "hello"), 0o755)
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
    return bundle, verify_signature(manifest, manifest + ".sig", rootfs)


def pin_broker(bundle: str, key: ed25519.Ed25519PrivateKey, urls: list[str], ca_pem: bytes | None = None,
               pins: tuple[str, ...] = ()) -> EnclaveIdentity:  # fmt: skip
    """Re-sign the bundle's manifest naming the key broker(s) it trusts (``[kbs]``,
    enclave/identity/broker.py): `urls`, the CA `ca_pem` (written to the rootfs as a
    trusted file) and/or base64 key pins. The new identity."""
    import base64
    import dataclasses

    from ..enclave.identity import load_manifest
    from ..enclave.identity.broker import BrokerPin, normalize_url
    from ..enclave.identity.manifest import TrustedFile

    rootfs = os.path.join(bundle, "rootfs")
    manifest = rootfs + MANIFEST
    current = load_manifest(manifest)
    trusted, cacert = current.trusted_files, None
    if ca_pem is not None:
        cacert = "/app/kbs-ca.pem"
        with open(rootfs + cacert, "wb") as f:
            f.write(ca_pem)
        trusted = (*(t for t in trusted if t.path != cacert), TrustedFile(cacert, None))
    pin = BrokerPin(tuple(sorted({normalize_url(u) for u in urls})), cacert,
                    tuple(sorted(base64.b64decode(p) for p in pins)))  # fmt: skip
    pinned = dataclasses.replace(current, trusted_files=trusted, kbs=pin)
    with open(manifest, "w") as f:
        f.write(dump_manifest(expand_trusted_files(pinned, rootfs)))
    write_signature(sign_manifest(manifest, rootfs, KeySigner(key)), manifest + ".sig")
    return verify_signature(manifest, manifest + ".sig", rootfs)


def set_enclave(bundle: str, runtime_args: str = "", annotations: dict[str, str] | None = None,
                args: list[str] | None = None, env: list[str] | None = None) -> None:  # fmt: skip
    """Point the bundle's config at the wasm runtime and the signed manifest."""
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    if args is not None:
        cfg["process"]["args"] = args
    cfg["process"]["env"] += env or []
    extra = f",{runtime_args}" if runtime_args else ""
    cfg["annotations"] = {"enclave.type": "software", "enclave.runtime.path": "wasm",
                          "enclave.runtime.args": f"manifest={MANIFEST}{extra}", **(annotations or {})}  # fmt: skip
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
