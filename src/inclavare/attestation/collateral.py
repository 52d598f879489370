"""The collateral store: endorsements for offline verification, loaded from files or a cache directory.

What it holds (RATS "endorsements"):

* Intel: TCB info (SGX/TDX, per FMSPC), QE identities (``QE``, ``TD_QE``),
  CRLs (Intel SGX Root CA CRL, PCK Platform/Processor CA CRLs) and the
  certificates that sign them (Intel SGX TCB Signing, PCK CAs);
* AMD: VCEK/VLEK certificates and the ASK/ASVK intermediates;
* software TEEs: the Ed25519 public keys of trusted hosts;
* any other certificate (used only as an intermediate; trust comes from
  the pinned roots in :mod:`.hazmat.roots`, never from the store).

Files are classified by *content*, not name: ``{"tcbInfo":..}`` and
``{"enclaveIdentity":..}`` PCS bodies, dcap-qvl ``QuoteCollateralV3`` JSON
bundles (PCS ``tcbEvaluationDataNumbers`` bodies are recognised and
skipped), PEM/DER certificates and CRLs, PEM Ed25519 public keys (or the
JSON ``inclavare enclave host-key`` prints, ``{"key_id", "public_key"}``).
A cache directory is read recursively (files ending in .json, .pem, .der, .crl,
.cer, .crt); :meth:`CollateralStore.save` and :mod:`.fetch` write this layout::

    <cache>/intel/tcbinfo/<sgx|tdx>-<FMSPC>-<issueDate>.json    PCS response body, bytes as served
    <cache>/intel/qeidentity/<qe|td_qe>-<issueDate>.json
    <cache>/intel/crl/<root|platform|processor>-<thisUpdate>.der
    <cache>/certs/<sha256 prefix>.pem                            issuer chains, VCEK/VLEK, ASK/ASVK
    <cache>/software/<key id prefix>.pem                         trusted software-TEE host keys

Several versions of the same item may coexist (the cache keeps history);
lookups prefer the one valid at the verification instant, then the newest.
Verification never touches the network (see :mod:`.fetch`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from .errors import CollateralError
from .hazmat import certs as xc
from .hazmat.guard import contained
from .hazmat.hextext import from_hex
from .hazmat.intel_collateral import (
    EnclaveIdentity,
    Signed,
    TcbInfo,
    parse_enclave_identity,
    parse_tcb_info,
    split_pcs_body,
)
from .hazmat.jsonspan import loads_strict

_SUFFIXES = (".json", ".pem", ".der", ".crl", ".cer", ".crt")
MAX_FILE = 4 << 20
_T = TypeVar("_T")
_BUNDLE_KEYS = {"tcb_info", "tcb_info_signature", "qe_identity", "qe_identity_signature", "pck_crl", "root_ca_crl"}


class CollateralStore:
    """An in-memory index of endorsements; build it once, verify many times."""

    def __init__(self) -> None:
        self.tcb_infos: list[TcbInfo] = []
        self.qe_identities: list[EnclaveIdentity] = []
        self.crls: list[x509.CertificateRevocationList] = []
        self.certificates: list[x509.Certificate] = []
        self.host_keys: list[Ed25519PublicKey] = []
        self._fingerprints: set[str] = set()
        self._crls_by_issuer: dict[bytes, list[x509.CertificateRevocationList]] = {}

    # -- loading -----------------------------------------------------------
    @classmethod
    def open(cls, path: str) -> CollateralStore:
        """Load a cache directory (recursively) or a single file."""
        store = cls()
        store.add_path(path)
        return store

    @classmethod
    def from_files(cls, paths: Iterable[str]) -> CollateralStore:
        store = cls()
        for path in paths:
            store.add_path(path)
        return store

    def add_path(self, path: str) -> None:
        if os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.lower().endswith(_SUFFIXES):
                        self.add_file(os.path.join(dirpath, name))
            return
        self.add_file(path)

    def add_file(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE + 1)
        except OSError as exc:
            raise CollateralError(f"collateral {path}: {exc.strerror or exc}") from None
        if len(data) > MAX_FILE:
            raise CollateralError(f"collateral {path}: larger than 4 MiB")
        self.add_bytes(data, path)

    def add_bytes(self, data: bytes, name: str = "collateral") -> None:
        """Classify ``data`` by content and index it; CollateralError (naming ``name``) if malformed."""
        with contained(name, CollateralError):
            self._add_bytes(data, name)

    def _add_bytes(self, data: bytes, name: str) -> None:
        if not data.strip():
            raise CollateralError(f"{name}: empty file")
        if data.lstrip()[:1] == b"{":
            self._add_json(data, name)
        elif data.lstrip().startswith(b"-----BEGIN"):
            self._add_pem(data, name)
        else:
            self._add_der(data, name)

    def _add_json(self, data: bytes, name: str) -> None:
        doc = loads_strict(data, name)
        if isinstance(doc, dict) and "tcbInfo" in doc:
            self.add_tcb_info(parse_tcb_info(split_pcs_body(data, "tcbInfo", name), name))
        elif isinstance(doc, dict) and "enclaveIdentity" in doc:
            self.add_qe_identity(parse_enclave_identity(split_pcs_body(data, "enclaveIdentity", name), name))
        elif isinstance(doc, dict) and set(doc) >= _BUNDLE_KEYS:
            self._add_bundle(doc, name)
        elif isinstance(doc, dict) and isinstance(doc.get("public_key"), str):
            self._add_host_key_json(doc, name)
        elif isinstance(doc, dict) and "tcbEvaluationDataNumbers" in doc:
            return  # PCS "TCB evaluation data numbers": recognised, not needed to verify
        else:
            raise CollateralError(f"{name}: JSON is neither a PCS TCB info / QE identity body nor a dcap-qvl bundle")

    def _add_bundle(self, doc: dict[str, object], name: str) -> None:
        """A dcap-qvl ``QuoteCollateralV3`` JSON: raw signed strings, hex signatures and CRLs, PEM chains."""
        for key in ("tcb_info_issuer_chain", "qe_identity_issuer_chain", "pck_crl_issuer_chain"):
            if isinstance(doc.get(key), str):
                self._add_pem(str(doc[key]).encode(), f"{name}: {key}")
        self.add_tcb_info(parse_tcb_info(_bundle_signed(doc, "tcb_info", name), f"{name}: tcb_info"))
        self.add_qe_identity(parse_enclave_identity(_bundle_signed(doc, "qe_identity", name), f"{name}: qe_identity"))
        for key in ("root_ca_crl", "pck_crl"):
            self.add_crl(xc.load_crl(_bundle_hex(doc, key, name), f"{name}: {key}", CollateralError))

    def _add_host_key_json(self, doc: dict[str, object], name: str) -> None:
        """What ``inclavare enclave host-key --format json`` prints: the PEM, checked against its ``key_id``."""
        pem = str(doc["public_key"]).encode()
        if not pem.lstrip().startswith(b"-----BEGIN PUBLIC KEY"):
            raise CollateralError(f"{name}: public_key: not a PEM public key")
        scratch = CollateralStore()
        scratch._add_pem(pem, f"{name}: public_key")
        key = scratch.host_keys[0]
        kid = hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()
        if "key_id" in doc and doc["key_id"] != kid:
            raise CollateralError(f"{name}: key_id {str(doc['key_id'])[:64]} is not the id of public_key ({kid})")
        self.add_host_key(key)

    def _add_pem(self, data: bytes, name: str) -> None:
        if b"BEGIN CERTIFICATE" in data:
            for cert in xc.load_certificates(data, name, CollateralError):
                self.add_certificate(cert)
        elif b"BEGIN X509 CRL" in data:
            self.add_crl(xc.load_crl(data, name, CollateralError))
        elif b"BEGIN PUBLIC KEY" in data:
            with contained(name, CollateralError, "not a valid PEM public key"):
                key = load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise CollateralError(f"{name}: public keys in the store must be Ed25519 software-TEE host keys")
            self.add_host_key(key)
        else:
            raise CollateralError(f"{name}: PEM holds no certificate, CRL or public key")

    def _add_der(self, data: bytes, name: str) -> None:
        try:
            self.add_crl(xc.load_crl(data, name, CollateralError))
            return
        except CollateralError:
            pass
        for cert in xc.load_certificates(data, name, CollateralError):
            self.add_certificate(cert)

    def add_tcb_info(self, info: TcbInfo) -> None:
        if all(t.signed != info.signed for t in self.tcb_infos):
            self.tcb_infos.append(info)

    def add_qe_identity(self, identity: EnclaveIdentity) -> None:
        if all(q.signed != identity.signed for q in self.qe_identities):
            self.qe_identities.append(identity)

    def add_crl(self, crl: x509.CertificateRevocationList) -> None:
        if all(c.fingerprint(hashes.SHA256()) != crl.fingerprint(hashes.SHA256()) for c in self.crls):
            self.crls.append(crl)
            self._crls_by_issuer.setdefault(crl.issuer.public_bytes(), []).append(crl)

    def add_certificate(self, cert: x509.Certificate) -> None:
        fp = xc.fingerprint(cert)
        if fp not in self._fingerprints:
            self._fingerprints.add(fp)
            self.certificates.append(cert)

    def add_host_key(self, key: Ed25519PublicKey) -> None:
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if all(k.public_bytes(Encoding.Raw, PublicFormat.Raw) != raw for k in self.host_keys):
            self.host_keys.append(key)

    def update(self, other: CollateralStore, *, host_keys: bool = True) -> None:
        """Add everything indexed in ``other`` (its host keys only if ``host_keys``)."""
        for info in other.tcb_infos:
            self.add_tcb_info(info)
        for identity in other.qe_identities:
            self.add_qe_identity(identity)
        for crl in other.crls:
            self.add_crl(crl)
        for cert in other.certificates:
            self.add_certificate(cert)
        for key in other.host_keys if host_keys else ():
            self.add_host_key(key)

    # -- lookups -----------------------------------------------------------
    def tcb_info(self, tee: str, fmspc: bytes, at: datetime) -> TcbInfo | None:
        found = [t for t in self.tcb_infos if t.id == tee and t.fmspc == fmspc]
        return _best(found, at, lambda t: (t.issue_date, t.next_update))

    def qe_identity(self, ident: str, at: datetime) -> EnclaveIdentity | None:
        found = [q for q in self.qe_identities if q.id == ident]
        return _best(found, at, lambda q: (q.issue_date, q.next_update))

    def crl(self, issuer: x509.Certificate, at: datetime) -> x509.CertificateRevocationList | None:
        """The CRL issued by ``issuer`` (matched by subject DER), preferring one current at ``at``."""
        found = self._crls_by_issuer.get(xc.subject_der(issuer), [])
        return _best(found, at, lambda c: (c.last_update_utc, c.next_update_utc or c.last_update_utc))

    def certificates_named(self, subject: x509.Name | str) -> list[x509.Certificate]:
        """Certificates whose subject is ``subject`` (a Name, or a common name string)."""
        if isinstance(subject, str):
            return [c for c in self.certificates if xc.common_name(c.subject) == subject]
        return [c for c in self.certificates if c.subject == subject]

    # -- saving ------------------------------------------------------------
    def save(self, root: str) -> list[str]:
        """Write everything into the documented cache layout under ``root``; returns the paths written."""
        os.makedirs(root, exist_ok=True)
        written: list[str] = []
        for t in self.tcb_infos:
            name = f"{t.id.lower()}-{t.fmspc.hex().upper()}-{_stamp(t.issue_date)}.json"
            written.append(_write(root, "intel/tcbinfo", name, _pcs_body("tcbInfo", t.signed)))
        for q in self.qe_identities:
            name = f"{q.id.lower()}-{_stamp(q.issue_date)}.json"
            written.append(_write(root, "intel/qeidentity", name, _pcs_body("enclaveIdentity", q.signed)))
        for c in self.crls:
            name = f"{_ca_label(c.issuer)}-{_stamp(c.last_update_utc)}.der"
            written.append(_write(root, "intel/crl", name, c.public_bytes(Encoding.DER)))
        for cert in self.certificates:
            written.append(_write(root, "certs", xc.fingerprint(cert)[:16] + ".pem", cert.public_bytes(Encoding.PEM)))
        for key in self.host_keys:
            kid = hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]
            pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            written.append(_write(root, "software", kid + ".pem", pem))
        return written


def _best(found: list[_T], at: datetime, window: Callable[[_T], tuple[datetime, datetime]]) -> _T | None:
    """Prefer items whose [start, end] window contains ``at``; among equals, the newest start."""
    if not found:
        return None
    return max(found, key=lambda item: (window(item)[0] <= at <= window(item)[1], window(item)[0]))


def _bundle_signed(doc: dict[str, object], key: str, name: str) -> Signed:
    body, sig = doc.get(key), doc.get(f"{key}_signature")
    if not isinstance(body, str) or not isinstance(sig, str):
        raise CollateralError(f"{name}: {key} and {key}_signature must be strings")
    try:
        signature = from_hex(sig)
    except ValueError:
        raise CollateralError(f"{name}: {key}_signature is not hex") from None
    if len(signature) != 64:
        raise CollateralError(f"{name}: {key}_signature must be 64 bytes")
    return Signed(body.encode(), signature)


def _bundle_hex(doc: dict[str, object], key: str, name: str) -> bytes:
    value = doc.get(key)
    try:
        if isinstance(value, str):
            return from_hex(value)
    except ValueError:
        pass
    raise CollateralError(f"{name}: {key} must be hex-encoded DER")


def _pcs_body(member: str, signed: Signed) -> bytes:
    return b'{"' + member.encode() + b'":' + signed.body + b',"signature":"' + signed.signature.hex().encode() + b'"}'


def _ca_label(issuer: x509.Name) -> str:
    cn = xc.common_name(issuer)
    for word in ("Root", "Platform", "Processor"):
        if word in cn:
            return word.lower()
    return hashlib.sha256(issuer.public_bytes()).hexdigest()[:12]


def _stamp(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%SZ")


def _write(root: str, sub: str, name: str, data: bytes) -> str:
    directory = os.path.join(root, sub)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path
