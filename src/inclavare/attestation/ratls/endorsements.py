"""The RA-TLS endorsements extension (tcg-dice-endorsement-manifest, OID 2.23.133.5.4.2).

rats-tls (its TCG DICE format, ``-e``/``RATS_TLS_CONF_FLAGS_PROVIDE_ENDORSEMENTS``; docs/ratls.md) puts
the DCAP collateral the attester saw next to its SGX/TDX evidence, as the
same CBOR tag as the evidence over an 8-entry array::

    tag([version(uint), h'TCB_INFO', h'TCB_ISSUER_CHAIN', h'CRL_PCK_CERT', h'CRL_PCK_PROC_CA',
         h'CRL_ISSUER_CHAIN_PCK_CERT', h'QE_ID_INFO', h'QE_ID_ISSUER_CHAIN'])

rats-tls writes ``version`` with ``cbor_build_uint32`` (always five bytes,
``1a 00 00 00 03``) and its reader insists on that width
(``dice_parse_endorsements_buffer_with_tag`` in src/core/dice.c asserts
``cbor_int_get_width == CBOR_INT_32``), so :meth:`Endorsements.encode` writes
it the same way; any width is read. Its tag must be 60000 for a current
rats-tls reader (0x1A7501 before rats-tls defec92).

The entries are the fields of DCAP's ``sgx_ql_qve_collateral_t`` (C strings:
a trailing NUL is tolerated; CRLs as PEM, DER or hex DER). A verifier uses
them as *untrusted input*: they only feed the collateral store of one
verification, and every piece is still checked against Intel's pinned root
(the TCB info and QE identity signatures, the CRL signatures, the chains).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields

import cbor2

from ..collateral import CollateralStore
from ..errors import AttestationError, EvidenceFormatError
from ..formats import unwrap_text
from ..hazmat.cose import decode_exact
from ..hazmat.guard import contained

OID_ENDORSEMENTS = "2.23.133.5.4.2"
INTEL_TAGS = frozenset({60000, 0x1A7501})  # endorsements exist for Intel TEE quotes only
MAX_VERSION = 0xFFFFFFFF
WHAT = "ratls certificate: endorsements"


@dataclass(frozen=True)
class Endorsements:
    """DCAP collateral in rats-tls order (``sgx_ql_qve_collateral_t``)."""

    version: int
    tcb_info: bytes
    tcb_issuer_chain: bytes
    crl_pck_cert: bytes
    crl_pck_proc_ca: bytes
    crl_issuer_chain_pck_cert: bytes
    qe_id_info: bytes
    qe_id_issuer_chain: bytes

    def encode(self, tag: int) -> bytes:
        """``tag([version as uint32, 7 byte strings])``, byte for byte as rats-tls's libcbor writes it."""
        if tag not in INTEL_TAGS:
            raise AttestationError(f"{WHAT}: rats-tls defines them for SGX/TDX quotes only (tag 0x{tag:x})")
        if not 0 <= self.version <= MAX_VERSION:
            raise AttestationError(f"{WHAT}: version {self.version} does not fit rats-tls's uint32")
        head = cbor2.dumps(cbor2.CBORTag(tag, []))[:-1]  # the tag's head alone (libcbor: shortest form)
        entries = b"".join(cbor2.dumps(bytes(v)) for v in astuple(self)[1:])
        return head + b"\x88\x1a" + self.version.to_bytes(4, "big") + entries

    @classmethod
    def decode(cls, raw: bytes) -> Endorsements:
        with contained(WHAT):
            return cls._decode(raw)

    @classmethod
    def _decode(cls, raw: bytes) -> Endorsements:
        item = decode_exact(raw, WHAT)
        if not isinstance(item, cbor2.CBORTag) or item.tag not in INTEL_TAGS:
            raise EvidenceFormatError(f"{WHAT}: not a CBOR tag of an Intel TEE quote (60000, 0x1A7501)")
        value = item.value
        count = len(fields(cls))
        if (
            not isinstance(value, Sequence)
            or len(value) != count
            or not isinstance(value[0], int)
            or isinstance(value[0], bool)
            or not all(isinstance(v, bytes) for v in value[1:])
        ):
            raise EvidenceFormatError(f"{WHAT}: must be [version, {count - 1} byte strings]")
        return cls(*value)

    def add_to(self, store: CollateralStore) -> None:
        """Index every non-empty entry in ``store`` (classified by content, as
        collateral files are). Only what is checked against Intel's pinned root
        may come from a peer: a public key would be taken as a trusted
        software-TEE host key, letting a peer endorse itself."""
        scratch = CollateralStore()
        for name, value in zip([f.name for f in fields(self)][1:], astuple(self)[1:], strict=True):
            data = unwrap_text(bytes(value).rstrip(b"\0"))
            if data.strip():
                scratch.add_bytes(data, f"{WHAT}: {name}")
        if scratch.host_keys:
            raise EvidenceFormatError(
                f"{WHAT}: a public key is not collateral; host keys are trusted only from the verifier's store"
            )
        store.update(scratch, host_keys=False)


def merged(base: CollateralStore, extra: Endorsements) -> CollateralStore:
    """A new store with everything in ``base`` plus ``extra``; ``base`` is not modified."""
    store = CollateralStore()
    store.update(base)
    extra.add_to(store)
    return store
