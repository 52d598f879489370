"""Software sealing: AES-256-GCM under keys derived from a host secret and an identity.

SGX derives sealing keys in the CPU (EGETKEY, Intel SDM Vol. 3D §40.2 and
§38.17 KEYREQUEST) from a fused secret plus the requesting enclave's identity.
Here the fused secret is a 32-byte host secret file (0600, created on first
use; :class:`HostSecret`) and the key is derived with HKDF-SHA256 (RFC 5869)::

    key  = HKDF-SHA256(IKM = host secret, salt = b"inclavare/seal-key/v1",
                       info = enc({policy, id, isv_prod_id, isv_svn, debug, key_id}), L = 32)
    id   = MRENCLAVE (policy "mrenclave")  or  MRSIGNER (policy "mrsigner")

``enc`` is :mod:`._codec`. As in SGX, ISVPRODID and the DEBUG attribute are
always in the derivation, so a debug build of an enclave can never unseal
what the production build sealed. ``key_id`` is 32 random bytes per blob
(SGX KEYREQUEST.KEYID), so every blob has its own key and a random 96-bit
GCM nonce is far inside the limits of NIST SP 800-38D §8.3.

**SVN rule.** SGX lets an enclave request keys for any ISVSVN up to its own,
so data sealed at SVN n opens in versions >= n and never in older ones.
The blob stores the SVN level n its key was derived for; :func:`unseal`
refuses n > own SVN and otherwise derives the key for level n. An enclave
with a lower SVN would need the level-n key, which only the derivation with
the signed identity's SVN >= n hands out (see docs/enclave-identity.md for
what that does and does not stop: the host root can derive every key).

**Blob format v1** (integers big-endian)::

    0   8  magic  b"ICLVSEAL"
    8   1  version  = 1
    9   1  policy   1 = mrenclave, 2 = mrsigner
    10  2  isv_svn  SVN level of the key
    12 32  key_id
    44 12  nonce
    56  *  ciphertext || 16-byte GCM tag
    GCM AAD = bytes 0..56 || caller's aad

The header is authenticated, so changing the policy, SVN or key id breaks
the tag. Every cryptographic failure — wrong host secret, other enclave,
edited header or ciphertext, wrong aad — is the same "cannot unseal:
authentication failed": GCM cannot tell them apart, and we do not try to.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import _codec
from ._files import load_or_create_secret
from .errors import HostKeyError, SealError
from .identity import EnclaveIdentity, Policy

DEFAULT_HOST_SECRET = "/var/lib/inclavare/host-secret"
MAGIC = b"ICLVSEAL"
HEADER = struct.Struct(">8sBBH32s12s")
_POLICY_CODES = {Policy.MRENCLAVE: 1, Policy.MRSIGNER: 2}
_POLICIES = {code: policy for policy, code in _POLICY_CODES.items()}
_SALT = b"inclavare/seal-key/v1"


class HostSecret:
    """The per-host sealing root. Its bytes never leave this object except into HKDF."""

    __slots__ = ("_secret", "path")

    def __init__(self, secret: bytes, path: str = "<memory>") -> None:
        if len(secret) != 32:
            raise HostKeyError(path, "", f"host secret must be exactly 32 bytes, not {len(secret)}")
        self._secret = secret
        self.path = path

    def __repr__(self) -> str:
        return f"HostSecret({self.path!r})"

    @classmethod
    def load_or_create(cls, path: str = DEFAULT_HOST_SECRET) -> HostSecret:
        """Read the host secret at `path`, creating it (32 random bytes, 0600) on first use."""
        return cls(load_or_create_secret(path, lambda: os.urandom(32), "host secret"), path)

    def derive_key(self, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(self._secret)


def seal_key(secret: HostSecret, identity: EnclaveIdentity, policy: Policy, svn: int, key_id: bytes) -> bytes:
    """The AES-256 key for one blob (see the module docstring)."""
    info: dict[str, _codec.Encodable] = {
        "policy": policy.value,
        "id": identity.measurement if policy is Policy.MRENCLAVE else identity.signer,
        "isv_prod_id": identity.isv_prod_id,
        "isv_svn": svn,
        "debug": identity.debug,
        "key_id": key_id,
    }
    return secret.derive_key(_codec.encode(info))


def seal(
    identity: EnclaveIdentity,
    policy: Policy,
    plaintext: bytes,
    aad: bytes = b"",
    *,
    secret: HostSecret | None = None,
    svn: int | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Seal `plaintext` to `identity` under `policy`; `svn` defaults to the identity's SVN."""
    svn = identity.isv_svn if svn is None else svn
    if not 0 <= svn <= identity.isv_svn:  # KEYREQUEST.ISVSVN > own ISVSVN is #GP in SGX
        raise SealError("seal", "isv_svn", f"cannot seal at SVN {svn} above this enclave's SVN {identity.isv_svn}")
    secret = HostSecret.load_or_create() if secret is None else secret
    key_id, nonce = rng(32), rng(12)
    header = HEADER.pack(MAGIC, 1, _POLICY_CODES[policy], svn, key_id, nonce)
    key = seal_key(secret, identity, policy, svn, key_id)
    return header + AESGCM(key).encrypt(nonce, plaintext, header + aad)


def blob_policy(blob: bytes, source: str = "sealed blob") -> tuple[Policy, int]:
    """Policy and SVN level from a blob's header (format checks only; nothing is decrypted)."""
    if len(blob) < HEADER.size + 16:
        raise SealError(source, "", "truncated: not a sealed blob")
    magic, version, code, svn, _, _ = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise SealError(source, "", "not a sealed blob (bad magic)")
    if version != 1:
        raise SealError(source, "header.version", f"version {version} is not supported")
    if code not in _POLICIES:
        raise SealError(source, "header.policy", f"unknown policy {code}")
    return _POLICIES[code], svn


def unseal(
    identity: EnclaveIdentity,
    blob: bytes,
    aad: bytes = b"",
    *,
    policy: Policy | None = None,
    secret: HostSecret | None = None,
    source: str = "sealed blob",
) -> bytes:
    """Open a blob sealed by :func:`seal`; `policy`, if given, must be the blob's."""
    sealed_policy, svn = blob_policy(blob, source)
    if policy is not None and policy is not sealed_policy:
        raise SealError(source, "header.policy", f"sealed under {sealed_policy.value}, not {policy.value}")
    if svn > identity.isv_svn:
        raise SealError(source, "header.isv_svn", f"sealed at SVN {svn}; this enclave has SVN {identity.isv_svn}")
    secret = HostSecret.load_or_create() if secret is None else secret
    header = blob[: HEADER.size]
    _, _, _, _, key_id, nonce = HEADER.unpack_from(blob)
    key = seal_key(secret, identity, sealed_policy, svn, key_id)
    try:
        return AESGCM(key).decrypt(nonce, blob[HEADER.size :], header + aad)
    except InvalidTag:
        raise SealError(source, "", "cannot unseal: authentication failed") from None
