"""The Intel SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1).

Intel "SGX PCK Certificate and Certificate Revocation List Profile
Specification", section "SGX Extensions"::

    SGXExtensions ::= SEQUENCE OF SEQUENCE { extnId OID, extnValue ANY }
      .1  PPID          OCTET STRING (16)
      .2  TCB           SEQUENCE OF { .2.1 .. .2.16 SGX TCB COMP01..16 SVN INTEGER,
                                      .2.17 PCESVN INTEGER, .2.18 CPUSVN OCTET STRING (16) }
      .3  PCE-ID        OCTET STRING (2)
      .4  FMSPC         OCTET STRING (6)
      .5  SGX Type      ENUMERATED (0 Standard, 1 Scalable, 2 Scalable with integrity)
      .6  PlatformInstanceID, .7 Configuration   (Platform CA certificates only; ignored)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509

from ..errors import EvidenceFormatError
from . import der
from .guard import guarded

SGX_EXTENSIONS_OID = "1.2.840.113741.1.13.1"
_ROOT = SGX_EXTENSIONS_OID


@dataclass(frozen=True)
class PckExtensions:
    ppid: bytes
    tcb_components: tuple[int, ...]  # SGX TCB COMP01..16 SVNs
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int


@guarded("pck certificate: sgx extensions")
def pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """Parse the SGX extensions of a PCK leaf certificate."""
    err = der.DerError("pck certificate: sgx extensions", EvidenceFormatError)
    for ext in cert.extensions:
        if ext.oid.dotted_string == SGX_EXTENSIONS_OID:
            raw = getattr(ext.value, "value", None)
            if not isinstance(raw, bytes):
                raise err("extension value is not raw bytes")
            return parse_sgx_extensions(raw)
    raise err("the certificate has no SGX extensions (OID 1.2.840.113741.1.13.1)")


@guarded("pck certificate: sgx extensions")
@lru_cache(maxsize=1024)
def parse_sgx_extensions(raw: bytes) -> PckExtensions:
    """Parse (memoised: a pure function of the bytes; errors are not cached)."""
    return _parse(raw)


def _parse(raw: bytes) -> PckExtensions:
    err = der.DerError("pck certificate: sgx extensions", EvidenceFormatError)
    top = der.parse_single(raw, err, der.TAG_SEQUENCE)
    fields = dict(der.oid_value_pairs(top.value, err))
    tcb = _tcb(_need(fields, ".2", "TCB", err), err)
    sgx_type = fields.get(_ROOT + ".5")
    return PckExtensions(
        ppid=der.decode_octets(_need(fields, ".1", "PPID", err), err, "PPID", 16),
        tcb_components=tcb[0],
        pce_svn=tcb[1],
        cpu_svn=tcb[2],
        pce_id=der.decode_octets(_need(fields, ".3", "PCE-ID", err), err, "PCE-ID", 2),
        fmspc=der.decode_octets(_need(fields, ".4", "FMSPC", err), err, "FMSPC", 6),
        sgx_type=der.decode_uint(sgx_type, err, "SGX Type") if sgx_type is not None else 0,
    )


def _need(fields: dict[str, der.Tlv], suffix: str, name: str, err: der.DerError) -> der.Tlv:
    tlv = fields.get(_ROOT + suffix)
    if tlv is None:
        raise err(f"{name} ({_ROOT}{suffix}) is missing")
    return tlv


def _tcb(tlv: der.Tlv, err: der.DerError) -> tuple[tuple[int, ...], int, bytes]:
    if tlv.tag != der.TAG_SEQUENCE:
        raise err("TCB is not a SEQUENCE")
    values = dict(der.oid_value_pairs(tlv.value, err))
    prefix = _ROOT + ".2."
    comps = []
    for i in range(1, 17):
        comp = values.get(f"{prefix}{i}")
        if comp is None:
            raise err(f"TCB component {i:02d} is missing")
        svn = der.decode_uint(comp, err, f"TCB component {i:02d}")
        if svn > 255:
            raise err(f"TCB component {i:02d} SVN {svn} is larger than a byte")
        comps.append(svn)
    pce = values.get(prefix + "17")
    cpu = values.get(prefix + "18")
    if pce is None or cpu is None:
        raise err("TCB PCESVN or CPUSVN is missing")
    pce_svn = der.decode_uint(pce, err, "PCESVN")
    if pce_svn > 0xFFFF:
        raise err(f"PCESVN {pce_svn} is larger than 16 bits")
    return tuple(comps), pce_svn, der.decode_octets(cpu, err, "CPUSVN", 16)
