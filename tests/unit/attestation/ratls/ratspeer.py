"""A rats-tls peer for interoperability tests, written from rats-tls's sources, not from inclavare's code.

Sources: github.com/inclavare-containers/rats-tls 6675532 (VERSION 0.6.4):

* certificates: ``src/core/rtls_core_generate_certificate.c`` (claims buffer,
  REPORT_DATA = SHA-256 of it, no extension for the nullattester),
  ``src/core/dice.c`` (``dice_generate_*``), ``src/crypto_wrappers/openssl/gen_cert.c``
  (v3, serial 1, O/CN, -1 h .. +1 year, the three common extensions,
  2.23.133.5.4.9 non-critical), CBOR through :mod:`.libcbor_model`;
* appraisal: ``src/tls_wrappers/openssl/un_negotiate.c`` and
  ``src/tls_wrappers/api/tls_wrapper_verify_certificate_extension.c`` with
  ``dice_parse_*``, including their quirks: a tag inside 60000..0x1A7506 that
  no branch knows leaves the evidence type empty, which selects
  ``nullverifier`` unless a verifier was named; an evidence array of one
  element is dereferenced at index 1 (:class:`Crash`); an endorsements
  version must be a 32-bit-wide integer. Evidence verifiers are modelled down
  to their first check, ``memcmp(hash, report_data, 32)``; quote and report
  signatures (DCAP, AMD) are not checked here;
* samples: ``samples/rats-tls-server/server.c`` (custom claims key_0/key_1,
  echo, or the Occlum build's MRENCLAVE || MRSIGNER || blue hello) and
  ``samples/rats-tls-client/client.c`` / ``sgx-stub-enclave/sgx_stub_ecall.c``
  (greeting, one record of at most 255 bytes, prefix removal in SGX/Occlum
  builds, ``strcmp``).

TLS is Python's ssl over OpenSSL. rats-tls appraises the peer inside
OpenSSL's verify callback and fails the handshake; this peer appraises right
after it and closes, which the other side sees as a closed connection.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from inclavare._sys.sslverify import defer_chain_verification

from . import libcbor_model as cb

OID_EVIDENCE = "2.23.133.5.4.9"
OID_ENDORSEMENTS = "2.23.133.5.4.2"
TAGS = {"sgx_ecdsa": 60000, "tdx_ecdsa": 60000, "sgx_la": 60002, "sev_snp": 0x1A7504, "sev": 0x1A7505, "csv": 0x1A7506}
TAG_MIN, TAG_MAX = 60000, 0x1A7506  # OCBR_TAG_EVIDENCE_MIN/MAX, src/include/internal/dice.h
HASH_SIZES = {0: 32, 1: 32, 7: 48, 8: 64}  # hash_size_of_algo, src/include/rats-tls/hash.h
HASH_NAMES = {0: "sha256", 1: "sha256", 7: "sha384", 8: "sha512"}
SAMPLE_CLAIMS = (("key_0", b"value_0\0"), ("key_1", b"value_1\0"))  # .value_size = sizeof("value_0")
GREETING = b"\033[91mHello and welcome to RATS-TLS!\033[0m\n"  # host and Occlum client
GREETING_SGX = b"\033[94mHello and welcome to RATS-TLS!\033[0m\n"  # SGX-mode client; also the Occlum server's hello
REPORT_DATA_AT = {"sgx_ecdsa": 48 + 320, "tdx_ecdsa": 48 + 520, "sev_snp": 0x50}  # quote header + body offset

Attester = Callable[[bytes], tuple[str, bytes]]  # hash -> (evidence type, raw evidence); ("", b"") = nullattester


class Refused(Exception):
    """The RTLS_ERR line after which rats-tls fails the handshake (or the sample its check)."""


class Crash(Exception):
    """Where rats-tls dereferences a NULL pointer (SIGSEGV)."""


def nullattester(_hash: bytes) -> tuple[str, bytes]:
    return "", b""


@dataclass
class Certificate:
    der: bytes
    key: ec.EllipticCurvePrivateKey
    claims_buffer: bytes
    evidence_buffer: bytes | None

    def pem_bundle(self) -> bytes:
        cert = x509.load_der_x509_certificate(self.der).public_bytes(serialization.Encoding.PEM)
        return cert + self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def generate_certificate(
    attester: Attester = nullattester,
    *,
    custom_claims: tuple[tuple[str, bytes], ...] = SAMPLE_CLAIMS,
    old_libcbor: bool = False,
    tag: int | None = None,
    endorsements: bytes | None = None,
) -> Certificate:
    """rtls_core_generate_certificate + openssl_gen_cert; ``tag`` overrides tag_of_evidence_type (tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    value = cb.serialize_alloc(cb.array(cb.uint8(1), cb.bstr(hashlib.sha256(spki).digest())), old_libcbor)
    pairs = [(cb.tstr("pubkey-hash"), cb.bstr(value))] + [(cb.tstr(n), cb.bstr(v)) for n, v in custom_claims]
    claims = cb.serialize_alloc(cb.cmap(*pairs), old_libcbor)
    kind, raw = attester(hashlib.sha256(claims).digest())
    evidence = None
    if kind:
        item = cb.tag(tag or TAGS[kind], cb.array(cb.bstr(raw), cb.bstr(claims)))
        evidence = cb.serialize_alloc(item, old_libcbor)
    now = datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Inclavare Containers"),
            x509.NameAttribute(NameOID.COMMON_NAME, "RATS-TLS"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder().serial_number(1).subject_name(name).issuer_name(name).public_key(key.public_key())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )  # fmt: skip
    for oid, data in ((OID_EVIDENCE, evidence), (OID_ENDORSEMENTS, endorsements)):
        if data:
            builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), data), False)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return Certificate(der, key, claims, evidence)


@dataclass
class Verdict:
    evidence_type: str  # "" when the certificate has none
    verifier: str  # the verifier instance that accepted
    custom_claims: dict[str, bytes] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def appraise(der: bytes, verifier: str = "") -> Verdict:
    """verify_certificate + tls_wrapper_verify_certificate_extension; ``verifier`` = a named (enforced) one."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    found = {
        e.oid.dotted_string: e.value.value for e in cert.extensions if isinstance(e.value, x509.UnrecognizedExtension)
    }
    log: list[str] = []
    kind, raw, claims = "", b"", None
    if OID_EVIDENCE not in found:
        log.append("No evidence available in peer's certificate")
    else:
        kind, raw, claims = parse_evidence_buffer(found[OID_EVIDENCE], log)
    if found.get(OID_ENDORSEMENTS):
        parse_endorsements(kind, found[OID_ENDORSEMENTS])
    digest = hashlib.sha256(claims).digest() if claims is not None else bytes(32)
    chosen = verifier or kind or "nullverifier"
    verify_evidence(chosen, kind, raw, digest)
    custom = parse_claims_buffer(claims, spki) if claims is not None else {}
    return Verdict(kind, chosen, custom, log)


def parse_evidence_buffer(data: bytes, log: list[str]) -> tuple[str, bytes, bytes]:
    """dice_parse_evidence_buffer_with_tag."""
    try:
        root = cb.load(data)
    except cb.Malformed:
        raise Refused("Failed to parse evidence_buffer as cbor data") from None
    if root.major != cb.TAG:
        raise Refused("Bad cbor data: assert 'cbor_isa_tag(root)' failed")
    if not TAG_MIN <= root.value <= TAG_MAX:
        raise Refused(f"Bad cbor data: invalid cbor tag got: {root.value:#x}")
    array = root.children[0]
    if array.major != cb.ARRAY:
        raise Refused("Bad cbor data: assert 'cbor_isa_array(array)' failed")
    if array.value != 2:  # logged, not refused
        log.append(f"Bad cbor data: invalid evidence array length: {array.value}, should be 2")
    if not array.children:
        raise Crash("cbor_isa_bytestring(cbor_array_get(array, 0) == NULL)")
    if array.children[0].major != cb.BYTES:
        raise Refused("Bad cbor data: assert 'cbor_isa_bytestring(array_0)' failed")
    raw = array.children[0].payload
    kind = evidence_from_raw(raw, root.value)
    if len(array.children) < 2:
        raise Crash("cbor_isa_bytestring(cbor_array_get(array, 1) == NULL)")
    if array.children[1].major != cb.BYTES:
        raise Refused("Bad cbor data: assert 'cbor_isa_bytestring(array_1)' failed")
    return kind, raw, array.children[1].payload


def evidence_from_raw(raw: bytes, tag: int) -> str:
    if tag == 60000:
        if len(raw) < 8:
            raise Refused(f"Invalid evidence: evidence length {len(raw)} is too short")
        version, key_type, tee_type = struct.unpack_from("<HHI", raw)
        if (version == 3 and key_type in (2, 3)) or (version == 4 and tee_type == 0):
            return "sgx_ecdsa"
        if version == 4 and tee_type == 0x81:
            return "tdx_ecdsa"
        if version == 2 or (version == 3 and key_type == 0):
            raise Refused("Unsupported evidence type: SGX EPID quote")
        raise Refused("Unsupported evidence type: unknown recognized")
    if tag == 60001:
        raise Refused("Unsupported evidence type: Intel TEE report (TDX report or SGX report type 2)")
    return {v: k for k, v in TAGS.items() if v != 60000}.get(tag, "")  # other in-range tags: an empty type


def parse_endorsements(kind: str, data: bytes) -> None:
    """dice_parse_endorsements_buffer_with_tag."""
    if kind not in ("sgx_ecdsa", "tdx_ecdsa"):
        raise Refused(f"Failed to generate endorsements buffer: unsupported evidence type: {kind}")
    root = cb.load(data)
    if root.major != cb.TAG or root.value != 60000:
        raise Refused(f"Bad cbor data: invalid cbor tag got: {root.value:#x}, 0xea60 expected")
    entries = root.children[0].children
    if len(entries) < 8:
        raise Crash("cbor_array_get(array, i) == NULL")
    if entries[0].major != cb.UINT or entries[0].width != 4:
        raise Refused("Bad cbor data: assert 'cbor_int_get_width(array_i) == CBOR_INT_32' failed")
    if any(e.major != cb.BYTES for e in entries[1:8]):
        raise Refused("Bad cbor data: assert 'cbor_isa_bytestring(cbor_object)' failed")


def verify_evidence(verifier: str, kind: str, raw: bytes, digest: bytes) -> None:
    if verifier == "nullverifier":
        return
    if verifier not in REPORT_DATA_AT:
        raise Refused(f"the verifier selecting err during verifying cert extension ({verifier!r})")
    if not raw:  # the zeroed evidence of a peer without evidence: the quote check itself fails
        raise Refused("failed to verify evidence")
    at = REPORT_DATA_AT[verifier]
    if raw[at : at + len(digest)] != digest:
        raise Refused("unmatched hash value in evidence.")


def parse_claims_buffer(data: bytes, spki: bytes) -> dict[str, bytes]:
    """dice_parse_claims_buffer, then the pubkey-hash check."""
    root = cb.load(data)
    if root.major != cb.MAP:
        raise Refused("Bad cbor data: assert 'cbor_isa_map(root)' failed")
    claims: dict[str, bytes] = {}
    pubkey_hash = None
    for key, value in zip(root.children[::2], root.children[1::2], strict=True):
        if key.major != cb.TEXT or value.major != cb.BYTES:
            raise Refused("Bad cbor data: claim name must be text, value bytes")
        if key.payload == b"pubkey-hash":
            entry = cb.load(value.payload)
            alg, digest = entry.children[0], entry.children[1]
            if alg.value not in HASH_SIZES or len(digest.payload) != HASH_SIZES[alg.value]:
                raise Refused("unsupported hash-alg-id or unmatched hash value length")
            pubkey_hash = (alg.value, digest.payload)
            continue
        claims[key.payload.decode()] = value.payload
    if pubkey_hash is None:
        raise Refused("failed to find claim with name 'pubkey-hash' from claims list")
    if hashlib.new(HASH_NAMES[pubkey_hash[0]], spki).digest() != pubkey_hash[1]:
        raise Refused("unmatched pubkey hash value in claims buffer")
    return claims


def _load(ctx: ssl.SSLContext, cert: Certificate) -> None:
    fd = os.memfd_create("ratspeer")
    try:
        os.write(fd, cert.pem_bundle())
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@dataclass
class Served:
    verdict: Verdict | None = None  # the client's, in mutual mode
    received: bytes = b""
    error: Exception | None = None


class RatsTlsServer:
    """rats-tls-server: one connection per :meth:`serve`, in a worker thread."""

    def __init__(
        self,
        attester: Attester = nullattester,
        *,
        verifier: str = "",
        mutual: bool = False,
        occlum_identity: bytes | None = None,
        old_libcbor: bool = False,
        tag: int | None = None,
    ) -> None:
        self.cert = generate_certificate(attester, old_libcbor=old_libcbor, tag=tag)
        self.verifier, self.mutual, self.occlum_identity = verifier, mutual, occlum_identity
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _load(self.ctx, self.cert)
        if mutual:  # SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            defer_chain_verification(self.ctx)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.address: tuple[str, int] = self.listener.getsockname()
        self.pool = ThreadPoolExecutor(max_workers=1)

    def serve(self) -> Future[Served]:
        return self.pool.submit(self._one)

    def _one(self) -> Served:
        served = Served()
        sock, _ = self.listener.accept()
        sock.settimeout(10)
        try:
            with self.ctx.wrap_socket(sock, server_side=True) as tls:
                if self.mutual:
                    served.verdict = appraise(tls.getpeercert(binary_form=True) or b"", self.verifier)
                served.received = tls.recv(256)[:255]
                reply = served.received if self.occlum_identity is None else self.occlum_identity + GREETING_SGX
                tls.sendall(reply)
        except (Refused, Crash, OSError) as exc:
            served.error = exc
        return served

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.listener.close()


@dataclass
class ClientResult:
    verdict: Verdict
    identity: bytes | None
    reply: bytes


def rats_tls_client(
    address: tuple[str, int],
    attester: Attester = nullattester,
    *,
    verifier: str = "",
    mutual: bool = False,
    build: str = "host",
) -> ClientResult:
    """rats-tls-client (``build``: host, sgx or occlum); Refused on its "Invalid response" check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # verified below, as its callback would
    if mutual:
        _load(ctx, generate_certificate(attester))
    with ctx.wrap_socket(socket.create_connection(address, timeout=10)) as tls:
        verdict = appraise(tls.getpeercert(binary_form=True) or b"", verifier)
        greeting = GREETING_SGX if build == "sgx" else GREETING
        tls.sendall(greeting)
        reply = tls.recv(256)[:255]
    identity = check_sample_reply(greeting, reply, build)
    return ClientResult(verdict, identity, reply[64:] if identity else reply)


def check_sample_reply(greeting: bytes, reply: bytes, build: str) -> bytes | None:
    """The sample client's check; the MRENCLAVE || MRSIGNER prefix it removed (SGX and Occlum builds)."""
    identity = None
    if build in ("sgx", "occlum") and len(reply) >= 64:
        identity, reply = reply[:64], reply[64:]
    if reply != greeting:
        raise Refused(f"Invalid response retrieved from rats-tls server: {reply!r}")
    return identity
