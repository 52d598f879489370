"""Enclave identity for the built-in software enclave runtimes (native and wasm).

What SGX hardware gives a real enclave, rebuilt in software and always
marked ``software: true`` (no hardware protects these enclaves; read
docs/enclave-identity.md before relying on any of it):

- :mod:`.manifest`   the enclave manifest (TOML) with located errors
- :mod:`.expand`     template expansion (pin trusted-file hashes) and TOML output
- :mod:`.measure`    the measurement, a MRENCLAVE analogue (exact encoding documented there)
- :mod:`.sigfile`    the signature file, a SIGSTRUCT analogue (CBOR)
- :mod:`.signing`    sign with a PEM key, verify a signed enclave -> :class:`EnclaveIdentity`
- :mod:`.signing_server`  the original shim's signing-server API (client and signer)
- :mod:`.sealing`    HKDF-derived AES-256-GCM sealing, MRENCLAVE / MRSIGNER policies, SVN rule
- :mod:`.sealed_dir` a directory of sealed files for the runtimes to expose to workloads
- :mod:`.hostkey`    the host's software-TEE Ed25519 key
- :mod:`.report`     local reports (software evidence) for an identity; import it on
                     its own (it pulls in :mod:`inclavare.attestation`)
- :mod:`.errors`     :class:`IdentityError` and its subclasses (all ``EnclaveError``)
"""

from __future__ import annotations

import importlib

# Eager: importing the submodule .measure (which anything may do first) would otherwise
# leave the package attribute `measure` naming the module, not the function.
from .measure import measure, measurement_of

# Each name is imported from its module on first use (PEP 562): an enclave's start
# needs the manifest, measurement and signature checks, not the signing server's
# HTTP client or the sealing code (~20 ms of every enclave container's create).
_WHERE = {
    "HostKeyError": "errors",
    "IdentityError": "errors",
    "ManifestError": "errors",
    "SealError": "errors",
    "SignatureError": "errors",
    "SigningServerError": "errors",
    "dump_manifest": "expand",
    "expand_trusted_files": "expand",
    "DEFAULT_HOST_KEY": "hostkey",
    "HostKey": "hostkey",
    "EnclaveIdentity": "identity",
    "Policy": "identity",
    "Manifest": "manifest",
    "load_manifest": "manifest",
    "parse_manifest": "manifest",
    "SealedDir": "sealed_dir",
    "DEFAULT_HOST_SECRET": "sealing",
    "HostSecret": "sealing",
    "seal": "sealing",
    "unseal": "sealing",
    "KeySigner": "signing",
    "inspect_signature": "signing",
    "sign_manifest": "signing",
    "verify_signature": "signing",
    "write_signature": "signing",
    "ServerSigner": "signing_server",
    "SigningServerClient": "signing_server",
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .errors import HostKeyError, IdentityError, ManifestError, SealError, SignatureError, SigningServerError
    from .expand import dump_manifest, expand_trusted_files
    from .hostkey import DEFAULT_HOST_KEY, HostKey
    from .identity import EnclaveIdentity, Policy
    from .manifest import Manifest, load_manifest, parse_manifest
    from .sealed_dir import SealedDir
    from .sealing import DEFAULT_HOST_SECRET, HostSecret, seal, unseal
    from .signing import KeySigner, inspect_signature, sign_manifest, verify_signature, write_signature
    from .signing_server import ServerSigner, SigningServerClient


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_HOST_KEY",
    "DEFAULT_HOST_SECRET",
    "EnclaveIdentity",
    "HostKey",
    "HostKeyError",
    "HostSecret",
    "IdentityError",
    "KeySigner",
    "Manifest",
    "ManifestError",
    "Policy",
    "SealError",
    "SealedDir",
    "ServerSigner",
    "SignatureError",
    "SigningServerClient",
    "SigningServerError",
    "dump_manifest",
    "expand_trusted_files",
    "inspect_signature",
    "load_manifest",
    "measure",
    "measurement_of",
    "parse_manifest",
    "seal",
    "sign_manifest",
    "unseal",
    "verify_signature",
    "write_signature",
]
