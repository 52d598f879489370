"""A synthetic Intel DCAP world for tests: our own root, PCK CA, PCK leaf, TCB signer, CRLs and quotes.

Genuine vectors cannot show a revoked PCK, a Revoked TCB level or an
OutOfDate QE; this builds correctly signed ones with test keys so the DCAP
pipeline (``verifiers._dcap.appraise``) can be run against a test anchor.
Everything is real cryptography; nothing in the code under test is replaced.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from inclavare.attestation.collateral import CollateralStore
from inclavare.attestation.hazmat.quote import INTEL_QE_VENDOR_ID

NOW = datetime(2025, 6, 1, tzinfo=UTC)
QE_MRSIGNER = bytes(range(32))
SGX_EXT = "1.2.840.113741.1.13.1"


def _key(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(n, ec.SECP256R1())


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + body


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def _int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def sgx_extensions(components: list[int], pce_svn: int, fmspc: bytes, pce_id: bytes = b"\0\0") -> bytes:
    """The PCK SGX extensions (Intel PCK certificate profile), DER."""
    tcb = [_der(0x30, _oid(f"{SGX_EXT}.2.{i + 1}") + _int(svn)) for i, svn in enumerate(components)]
    tcb += [
        _der(0x30, _oid(f"{SGX_EXT}.2.17") + _int(pce_svn)),
        _der(0x30, _oid(f"{SGX_EXT}.2.18") + _der(0x04, bytes(components))),
    ]
    items = [
        _der(0x30, _oid(f"{SGX_EXT}.1") + _der(0x04, b"p" * 16)),
        _der(0x30, _oid(f"{SGX_EXT}.2") + _der(0x30, b"".join(tcb))),
        _der(0x30, _oid(f"{SGX_EXT}.3") + _der(0x04, pce_id)),
        _der(0x30, _oid(f"{SGX_EXT}.4") + _der(0x04, fmspc)),
        _der(0x30, _oid(f"{SGX_EXT}.5") + _der(0x0A, b"\0")),
    ]
    return _der(0x30, b"".join(items))


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
    serial: int,
    extra: bytes | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if extra is not None:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXT), extra), critical=False)
    return b.sign(signer, hashes.SHA256())


def _crl(
    issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, revoked: list[int]
) -> x509.CertificateRevocationList:
    b = x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
    b = b.last_update(NOW - timedelta(days=1)).next_update(NOW + timedelta(days=29))
    for serial in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - timedelta(days=2)).build()
        )
    return b.sign(key, hashes.SHA256())


def _raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass
class World:
    """Knobs for one synthetic verification; ``build()`` returns (quote bytes, store, anchor)."""

    tdx: bool = False
    pck_components: list[int] = field(default_factory=lambda: [5] * 16)
    pce_svn: int = 10
    levels: list[tuple[list[int], int, str]] = field(
        default_factory=lambda: [([5] * 16, 10, "UpToDate"), ([1] * 16, 1, "OutOfDate")]
    )
    tdx_components: list[list[int]] | None = None  # per level; default all zero
    qe_levels: list[tuple[int, str]] = field(default_factory=lambda: [(4, "UpToDate"), (1, "OutOfDate")])
    qe_isv_svn: int = 4
    qe_mrsigner: bytes = QE_MRSIGNER
    module_levels: list[tuple[int, str]] = field(default_factory=lambda: [(3, "UpToDate"), (1, "OutOfDate")])
    tee_tcb_svn: bytes = bytes([3, 1] + [0] * 14)
    revoke_pck: bool = False
    revoke_pck_ca: bool = False
    pce_id: bytes = b"\0\0"
    fmspc: bytes = bytes.fromhex("00906ED50000")
    version: int | None = None  # default: 4 for TDX, 3 for SGX; 5 adds the body descriptor
    tee_tcb_svn2: bytes | None = None  # set (with version=5, tdx=True) for a TD 1.5 body

    def build(self) -> tuple[bytes, CollateralStore, x509.Certificate]:
        root_key, ca_key, leaf_key, tcb_key = _key(11), _key(12), _key(13), _key(14)
        root = _cert("Test SGX Root CA", root_key, None, root_key, True, 1)
        ca = _cert("Intel SGX PCK Platform CA", ca_key, root, root_key, True, 2)
        ext = sgx_extensions(self.pck_components, self.pce_svn, self.fmspc)
        leaf = _cert("Intel SGX PCK Certificate", leaf_key, ca, ca_key, False, 77, ext)
        tcb_signer = _cert("Intel SGX TCB Signing", tcb_key, root, root_key, False, 3)
        store = CollateralStore()
        store.add_certificate(tcb_signer)
        store.add_crl(_crl(root, root_key, [2] if self.revoke_pck_ca else []))
        store.add_crl(_crl(ca, ca_key, [77] if self.revoke_pck else []))
        store.add_bytes(self._pcs("tcbInfo", self._tcb_info(), tcb_key), "tcb info")
        store.add_bytes(self._pcs("enclaveIdentity", self._qe_identity(), tcb_key), "qe identity")
        chain = b"".join(c.public_bytes(Encoding.PEM) for c in (leaf, ca, root))
        return self._quote(leaf_key, chain), store, root

    def _pcs(self, member: str, body: dict, key: ec.EllipticCurvePrivateKey) -> bytes:
        raw = json.dumps(body, separators=(",", ":")).encode()
        return b'{"' + member.encode() + b'":' + raw + b',"signature":"' + _raw_sig(key, raw).hex().encode() + b'"}'

    def _window(self) -> dict:
        return {"issueDate": "2025-05-20T00:00:00Z", "nextUpdate": "2025-06-19T00:00:00Z"}

    def _tcb_info(self) -> dict:
        levels = []
        for i, (sgx, pce, status) in enumerate(self.levels):
            tcb: dict = {"sgxtcbcomponents": [{"svn": v} for v in sgx], "pcesvn": pce}
            if self.tdx:
                tdx = self.tdx_components[i] if self.tdx_components else [0] * 16
                tcb["tdxtcbcomponents"] = [{"svn": v} for v in tdx]
            levels.append(
                {
                    "tcb": tcb,
                    "tcbDate": "2024-01-01T00:00:00Z",
                    "tcbStatus": status,
                    "advisoryIDs": [f"INTEL-SA-{i:05d}"],
                }
            )
        info: dict = {"id": "TDX" if self.tdx else "SGX", "version": 3, **self._window(), "fmspc": self.fmspc.hex(),
                      "pceId": self.pce_id.hex(), "tcbType": 0, "tcbEvaluationDataNumber": 17,
                      "tcbLevels": levels}  # fmt: skip
        if self.tdx:
            module = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "ff" * 8}
            info["tdxModule"] = module
            mlevels = [
                {"tcb": {"isvsvn": s}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": st}
                for s, st in self.module_levels
            ]
            info["tdxModuleIdentities"] = [{"id": "TDX_01", **module, "tcbLevels": mlevels}]
        return info

    def _qe_identity(self) -> dict:
        levels = [
            {"tcb": {"isvsvn": s}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": st} for s, st in self.qe_levels
        ]
        return {"id": "TD_QE" if self.tdx else "QE", "version": 2, **self._window(), "tcbEvaluationDataNumber": 17,
                "miscselect": "00000000", "miscselectMask": "FFFFFFFF", "attributes": "11" + "00" * 15,
                "attributesMask": "FBFFFFFFFFFFFFFF" + "00" * 8, "mrsigner": QE_MRSIGNER.hex(),
                "isvprodid": 1 + self.tdx, "tcbLevels": levels}  # fmt: skip

    def _quote(self, pck_key: ec.EllipticCurvePrivateKey, chain: bytes) -> bytes:
        att_key = _key(21)
        att_pub = att_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
        version = self.version or (4 if self.tdx else 3)
        header = struct.pack("<HHIHH", version, 2, 0x81 if self.tdx else 0, 0, 0) + INTEL_QE_VENDOR_ID + bytes(20)
        body = bytearray(648 if self.tee_tcb_svn2 else 584 if self.tdx else 384)
        if self.tdx:
            body[0:16] = self.tee_tcb_svn
            body[136:184] = b"T" * 48
            if self.tee_tcb_svn2:
                body[584:600] = self.tee_tcb_svn2
        else:
            body[48] = 0x05  # INIT | MODE64BIT
            body[64:96] = b"E" * 32
        if version == 5:  # sgx_quote_5.h body descriptor: type (1 SGX, 2 TD 1.0, 3 TD 1.5), size
            header += struct.pack("<HI", 3 if self.tee_tcb_svn2 else 2 if self.tdx else 1, len(body))
        signed = header + bytes(body)
        auth = b"auth-data"
        qe = bytearray(384)
        qe[48] = 0x11
        qe[128:160] = self.qe_mrsigner
        qe[256:258] = struct.pack("<H", 1 + self.tdx)
        qe[258:260] = struct.pack("<H", self.qe_isv_svn)
        qe[320:352] = hashlib.sha256(att_pub + auth).digest()
        qe_block = bytes(qe) + _raw_sig(pck_key, bytes(qe)) + struct.pack("<H", len(auth)) + auth
        cert = struct.pack("<HI", 5, len(chain)) + chain
        if version >= 4:
            inner = qe_block + cert
            sig_data = _raw_sig(att_key, signed) + att_pub + struct.pack("<HI", 6, len(inner)) + inner
        else:
            sig_data = _raw_sig(att_key, signed) + att_pub + qe_block + cert
        return signed + struct.pack("<I", len(sig_data)) + sig_data
