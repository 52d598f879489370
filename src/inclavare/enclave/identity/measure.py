"""The enclave measurement: a software MRENCLAVE.

In SGX, MRENCLAVE is the SHA-256 digest the CPU accumulates over ECREATE,
EADD and EEXTEND while the enclave is built (Intel SDM Vol. 3D, §35.7
"Enclave measurement"), so it covers the code, the data and the layout but
*not* the SIGSTRUCT fields ISVPRODID, ISVSVN or the DEBUG attribute. Gramine
makes trusted-file hashes part of MRENCLAVE by measuring the manifest page.
Here there is no enclave build to record, so the measurement is a digest over
the canonical content of an expanded manifest — the same inputs, without the
page-level simulation::

    measurement = SHA-256( DOMAIN || enc(document) )
    DOMAIN      = b"inclavare/enclave-measurement/v1\\0"
    enc         = the canonical encoding of :mod:`._codec`
    document    = {
        "runtime":       str,                     "native" | "wasm"
        "entrypoint":    str | None,              native only
        "memory_limit":  int,                     bytes
        "argv":          {"policy": str, "values": [str, ...]},   values in order
        "env":           {"fixed": {name: value, ...}, "passthrough": [name, ...]},
        "trusted_files": {path: sha256 (32 bytes), ...},
        "allowed_files": [path, ...],
        "wasm":          None | {
            "module": str, "module_sha256": bytes,
            "max_memory_pages": int, "fuel": int | None, "epoch_deadline": int | None,
            "preopened_dirs": [[guest, path, read_only], ...],
        },
        "kbs":           {"urls": [url, ...], "cacert": str | None, "pin_sha256": [bytes, ...]},
    }

``kbs`` (broker.py: the key brokers the enclave trusts, URLs normalised)
is in the document only when the manifest has a ``[kbs]`` table: a manifest
without one measures exactly as before the table existed, so measurements
registered with a broker stay valid.

Lists that are sets (passthrough names, allowed files, preopened dirs, broker
URLs and pins) are sorted by UTF-8 bytes; dict keys are sorted by the
encoding; paths are normalised by the parser. Hence file order, TOML
formatting, comments, mtimes and ownership never change the measurement,
while any byte of a trusted file or the wasm module, and any field listed
above, does. ``isv_prod_id``, ``isv_svn`` and ``debug`` are left out exactly
as SGX leaves them out of MRENCLAVE: they are signed next to it (see
:mod:`.signing`), and ``debug`` is bound into sealing keys and reports as an
attribute. Bump ``v1`` in DOMAIN whenever the document changes shape (an
optional key present only when its table is, as ``kbs``, is not a change of
shape: no earlier document had it).
"""

from __future__ import annotations

import hashlib

from . import _codec
from .expand import expand_trusted_files, require_pinned
from .manifest import Manifest

DOMAIN = b"inclavare/enclave-measurement/v1\0"


def measure(manifest: Manifest, rootfs: str) -> bytes:
    """Hash what `manifest` names in `rootfs` and return the 32-byte measurement.

    Pinned hashes are checked (a mismatch is a :class:`ManifestError` naming
    the entry and the file); template entries are hashed from the rootfs.
    """
    return measurement_of(expand_trusted_files(manifest, rootfs))


def measurement_of(manifest: Manifest) -> bytes:
    """The measurement of a fully expanded manifest (no rootfs access)."""
    require_pinned(manifest)
    return hashlib.sha256(DOMAIN + _codec.encode(document(manifest))).digest()


def document(manifest: Manifest) -> dict[str, _codec.Encodable]:
    """The measured content of an expanded manifest, as encoded by :func:`measurement_of`."""
    wasm: _codec.Encodable = None
    if manifest.wasm is not None:
        w = manifest.wasm
        wasm = {
            "module": w.module,
            "module_sha256": w.module_sha256,
            "max_memory_pages": w.max_memory_pages,
            "fuel": w.fuel,
            "epoch_deadline": w.epoch_deadline,
            "preopened_dirs": [[d.guest, d.path, d.read_only] for d in w.preopened_dirs],
        }
    doc: dict[str, _codec.Encodable] = {
        "runtime": manifest.runtime,
        "entrypoint": manifest.entrypoint,
        "memory_limit": manifest.memory_limit,
        "argv": {"policy": manifest.argv_policy, "values": list(manifest.argv)},
        "env": {"fixed": dict(manifest.env_fixed), "passthrough": list(manifest.env_passthrough)},
        "trusted_files": {t.path: t.sha256 for t in manifest.trusted_files},
        "allowed_files": list(manifest.allowed_files),
        "wasm": wasm,
    }
    if manifest.kbs is not None:
        pin = manifest.kbs
        doc["kbs"] = {"urls": list(pin.urls), "cacert": pin.cacert, "pin_sha256": list(pin.pin_sha256)}
    return doc
