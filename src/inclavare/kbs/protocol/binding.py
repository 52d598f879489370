"""Report-data binding: the nonce and the TEE public key, hashed into the hardware report.

What trustee computes (kbs/src/attestation/backend.rs, ``__attest``, and the
attester side in guest-components ``rcar_client.rs``)::

    runtime_data = {"tee-pubkey": <JWK>, "nonce": <challenge nonce>, "additional-evidence": <string>}
    digest       = H(RFC 8785 canonical JSON of runtime_data)
    REPORT_DATA  = digest || zero bytes up to the report-data size (64 for SGX, TDX, SNP, software)

``H`` is negotiated during /auth: the KBC lists ``supported-hash-algorithms``
in the Request's extra-params, the KBS answers ``selected-hash-algorithm``
in the Challenge's; without a list the default is SHA-384 (trustee's
``DEFAULT_HASH_ALGORITHM``). Binding the key is what makes the JWE-wrapped
resources useful: only the TEE that produced the evidence holds the private
half of the key the resources are encrypted to. Binding the nonce makes the
evidence fresh: it answers this challenge and no other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from ...attestation import REPORT_DATA_SIZE
from ..errors import AuthFailed, ConfigError
from .canonical import CanonicalJsonError, canonical_json

HASH_ALGORITHMS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
DEFAULT_HASH_ALGORITHM = "sha384"  # trustee kbs-types / rcar_client.rs DEFAULT_HASH_ALGORITHM


def check_algorithm(name: str, location: str = "attestation.hash_algorithm") -> str:
    """Validate a configured preference (a ConfigError names the location)."""
    if name not in HASH_ALGORITHMS:
        raise ConfigError(location, f"{name!r} is not one of {', '.join(HASH_ALGORITHMS)}")
    return name


def select_hash_algorithm(offered: Sequence[str] | None, preferred: str = DEFAULT_HASH_ALGORITHM) -> str:
    """The algorithm the KBS announces: its preference if offered, else the strongest it shares with the KBC."""
    if offered is None:
        return preferred
    if preferred in offered:
        return preferred
    for name in ("sha512", "sha384", "sha256"):
        if name in offered:
            return name
    raise AuthFailed(f"no common hash algorithm (the KBC offers {', '.join(offered)[:80] or 'none'})")


def runtime_data_digest(runtime_data: Mapping[str, object], algorithm: str) -> bytes:
    """H(canonical JSON of the runtime data); raises ValueError for an unknown algorithm or non-canonical data."""
    try:
        hasher = HASH_ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown hash algorithm {algorithm!r}") from None
    try:
        return hasher(canonical_json(runtime_data)).digest()
    except CanonicalJsonError as exc:
        raise ValueError(f"runtime data cannot be canonicalized: {exc}") from None


def report_data_for(digest: bytes, size: int = REPORT_DATA_SIZE) -> bytes:
    """What the attester puts into its report: the digest, zero-extended to ``size`` bytes."""
    if len(digest) > size:
        raise ValueError(f"a {len(digest)}-byte digest does not fit {size} bytes of report data")
    return digest + bytes(size - len(digest))


def binds(report_data: bytes | None, digest: bytes) -> bool:
    """Does the verified report data carry exactly ``digest`` (then only zero bytes)?

    Constant-time over the compared bytes; trustee zero-extends the expected
    value to the report-data size and compares, which is the same rule.
    """
    if report_data is None or len(report_data) < len(digest):
        return False
    return hmac.compare_digest(report_data, report_data_for(digest, len(report_data)))
