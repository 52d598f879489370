"""Hypothesis fuzzing: every parser raises only AttestationError subclasses, whatever the input.

Not "only ValueError": anything that is not the project's error — a
cryptography x509.InvalidVersion, a cbor2 error, IndexError, a pyo3
PanicException (a BaseException) — escapes :func:`only_attestation_errors`
and fails the test. At the recipe level (``verify``/``inspect``) the error
must also come from a parser, located, not from the recipe's last-resort
:class:`VerifierFault`.

Inputs are random bytes, random CBOR/JSON structures, and genuine vectors
with random byte edits, truncations and extensions (which reach far deeper
into the parsers than noise), including edits of the DER certificates
inside quotes and Nitro documents (re-encoded in place, so the evidence
still parses up to the certificate). ``INCLAVARE_FUZZ_EXAMPLES`` raises the
budget and ``INCLAVARE_FUZZ_RANDOM=1`` draws new examples, for longer local
runs. (atheris is not used: hypothesis with these seeds reaches the same
library error paths, see test_corrupted_certificates.py for the exhaustive
single-byte sweep.)
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inclavare.attestation import AttestationError, CollateralStore, Policy, VerifierFault, detect, inspect, verify
from inclavare.attestation.fetch import fetch_for
from inclavare.attestation.formats import unwrap_text
from inclavare.attestation.hazmat import amd, der, hcl, ratls, x509lite
from inclavare.attestation.hazmat.certs import load_certificates, load_crl
from inclavare.attestation.hazmat.cose import parse_cose_sign1
from inclavare.attestation.hazmat.hextext import from_hex
from inclavare.attestation.hazmat.intel_collateral import parse_enclave_identity, parse_tcb_info, split_pcs_body
from inclavare.attestation.hazmat.nitro import parse_document
from inclavare.attestation.hazmat.pck import parse_sgx_extensions, pck_extensions
from inclavare.attestation.hazmat.quote import parse_quote
from inclavare.attestation.hazmat.snp import parse_report
from inclavare.attestation.policy import Policy as P
from inclavare.attestation.ratls import VerifyPolicy
from inclavare.attestation.ratls.endorsements import Endorsements
from inclavare.attestation.software import decode_report, encode_report, verify_report

from . import corrupt
from .vectors import BY_ID, VECTORS, at, evidence, store

N = int(os.environ.get("INCLAVARE_FUZZ_EXAMPLES", "150"))
FIXED = "INCLAVARE_FUZZ_RANDOM" not in os.environ  # CI replays the same examples; set it to explore
FUZZ = settings(max_examples=N, deadline=None, derandomize=FIXED, suppress_health_check=list(HealthCheck))

QUOTES = [evidence(BY_ID[i]) for i in ("sgx-dcapqvl", "tdx-dcapqvl", "tdx-gotdx-v5")]
SNP = (VECTORS / "snp/trustee/test-vlek-report.bin").read_bytes()
NITRO = evidence(BY_ID["nitro-evervault-ga"])
HCL = (VECTORS / "snp/azure/hcl-report-milan.bin").read_bytes()
TCB_INFO = (VECTORS / "tdx/collateral-00806F050000-2025-10/tcb_info.json").read_bytes()
QE_IDENTITY = (VECTORS / "sgx/mobilecoin/qe_identity.json").read_bytes()
CERT = (VECTORS / "sgx/gramine-ratls/tlscert.der").read_bytes()
CRL = (VECTORS / "tdx/go-tdx-guest/pckcrl").read_bytes()
INTEL_CERT = (VECTORS / "snp/go-sev-guest/vcek.der").read_bytes()
HOST_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SOFTWARE = encode_report(
    measurement=b"m" * 32, signer=b"s" * 32, product_id=7, svn=3, debug=False, report_data=b"r" * 64, host_key=HOST_KEY
)


def only_attestation_errors(fn: Callable[[], object]) -> None:
    """Run ``fn``: returning or an AttestationError is fine; any other exception escapes and fails the test."""
    try:
        fn()
    except AttestationError:
        pass


def located(fn: Callable[[], object]) -> None:
    """As :func:`only_attestation_errors`, and the error is a parser's own, not the recipe's last resort."""
    try:
        fn()
    except VerifierFault as exc:
        raise AssertionError(f"no parser located this: {exc}") from exc
    except AttestationError:
        pass


@st.composite
def edited(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few random byte edits, then maybe truncated or extended."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    tail = draw(st.binary(max_size=16))
    return bytes(data[:cut] if cut is not None else data) + tail


def from_vectors(*bases: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2048), *[edited(b) for b in bases])


def der_positions(data: bytes, base: int = 0) -> list[int]:
    """Offsets of every tag, length and first/last content byte in a DER tree (where edits change meaning)."""
    out, pos, err = [], 0, der.DerError("fuzz")
    while pos < len(data):
        try:
            tlv, end = der.read_tlv(data, pos, err)
        except AttestationError:
            return out
        start = end - len(tlv.value)
        out += [base + pos, base + pos + 1]
        if tlv.tag & 0x20:  # constructed: descend
            out += der_positions(tlv.value, base + start)
        elif tlv.value:
            out += [base + start, base + end - 1]
        pos = end
    return out


@st.composite
def certificate_edited(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` (a quote or a Nitro document) with 1-3 bytes of one of its certificates changed in place.

    Edits favour the DER structure (tags, lengths, first and last content
    bytes) and values already present in the certificate (an OID byte copied
    onto another OID is how a duplicate extension arises), so the budget
    reaches cryptography's x509 errors rather than only its signature checks.
    """
    sites = corrupt.certificates(base)
    index = draw(st.integers(0, len(sites) - 1))
    der_bytes = bytearray(sites[index].der)
    structural = der_positions(bytes(der_bytes))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.one_of(st.sampled_from(structural), st.integers(0, len(der_bytes) - 1)))
        old = der_bytes[pos]
        der_bytes[pos] = draw(
            st.one_of(
                st.integers(0, 255),
                st.sampled_from(structural).map(lambda p: der_bytes[p]),
                st.sampled_from([(old + 1) % 256, (old - 1) % 256]),
            )
        )
    return corrupt.replace(base, index, bytes(der_bytes))


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.binary(max_size=64) | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8) | st.integers(-40, 40), inner, max_size=5)
    ),
    max_leaves=20,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=15,
)


@FUZZ
@given(from_vectors(*QUOTES))
def test_quote_parser(data: bytes) -> None:
    only_attestation_errors(lambda: parse_quote(data))
    only_attestation_errors(lambda: parse_quote(data, allow_trailing_garbage=True))


@FUZZ
@given(from_vectors(SNP))
def test_snp_report_parser(data: bytes) -> None:
    only_attestation_errors(lambda: parse_report(data))


@FUZZ
@given(from_vectors(HCL))
def test_azure_hcl_parser(data: bytes) -> None:
    only_attestation_errors(lambda: hcl.parse_hcl_report(data))


@FUZZ
@given(
    st.one_of(
        from_vectors(NITRO),
        cbor_values.map(cbor2.dumps),
        st.lists(cbor_values, min_size=4, max_size=4).map(cbor2.dumps),
    )
)
def test_nitro_and_cose_parsers(data: bytes) -> None:
    only_attestation_errors(lambda: parse_document(data))
    only_attestation_errors(lambda: parse_cose_sign1(data, "cose"))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "nonce"]), cbor_values
    )
)
def test_nitro_payload_fields(payload: dict) -> None:
    cose = cbor2.dumps([cbor2.dumps({1: -35}), {}, cbor2.dumps(payload), b"\0" * 96])
    only_attestation_errors(lambda: parse_document(cose))


@FUZZ
@given(
    st.one_of(
        from_vectors(SOFTWARE),
        cbor_values.map(lambda v: cbor2.dumps(cbor2.CBORTag(18, [b"\xa1\x01\x27", {}, cbor2.dumps(v), b"x" * 64]))),
    )
)
def test_software_evidence_parser(data: bytes) -> None:
    only_attestation_errors(lambda: decode_report(data))
    only_attestation_errors(lambda: verify_report(data, [HOST_KEY.public_key()]))


@FUZZ
@given(from_vectors(CERT, INTEL_CERT))
def test_certificate_and_extension_parsers(data: bytes) -> None:
    def lite() -> None:
        cert = x509lite.load(data)
        x509lite.self_signed(cert)
        x509lite.name_text(cert.subject)
        ratls.extract(cert)

    def strict() -> None:
        for cert in load_certificates(data, "fuzz", AttestationError):
            only_attestation_errors(lambda: pck_extensions(cert))  # noqa: B023 - called immediately
            only_attestation_errors(lambda: amd.cert_info(cert, "fuzz"))  # noqa: B023

    only_attestation_errors(lite)
    only_attestation_errors(strict)


@FUZZ
@given(
    st.one_of(
        from_vectors(CERT),
        certificate_edited(
            b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(CERT) + b"-----END CERTIFICATE-----\n"
        ),
    )
)
def test_ratls_peer_certificates(data: bytes) -> None:
    """What an RA-TLS peer sends in its handshake: VerifyPolicy raises only AttestationError (then PeerRefused)."""
    peer = VerifyPolicy(Policy.genuine_only(), CollateralStore(), clock=lambda: AT)
    only_attestation_errors(lambda: peer.verify_certificate(data))


@FUZZ
@given(st.binary(max_size=300))
def test_der_walker(data: bytes) -> None:
    err = der.DerError("fuzz")

    def walk() -> None:
        tlv = der.parse_single(data, err)
        for child in der.children(tlv.value, err):
            only_attestation_errors(lambda: der.decode_oid(child.value, err))  # noqa: B023
            only_attestation_errors(lambda: der.decode_uint(child, err, "x"))  # noqa: B023

    only_attestation_errors(walk)
    only_attestation_errors(lambda: parse_sgx_extensions(data))


@FUZZ
@given(st.one_of(st.binary(max_size=200), cbor_values.map(cbor2.dumps)), st.binary(max_size=120))
def test_ratls_tagged_evidence_and_claims(raw: bytes, claims: bytes) -> None:
    only_attestation_errors(lambda: ratls._dice(ratls.DICE_TAGGED_EVIDENCE, raw))
    ev = ratls.RatlsEvidence("tcg-dice", ratls.DICE_TAGGED_EVIDENCE, "intel", b"", claims)
    only_attestation_errors(lambda: ratls.expected_binding(ev, b"spki"))


@FUZZ
@given(
    st.one_of(
        from_vectors(TCB_INFO, QE_IDENTITY),
        json_values.map(lambda v: json.dumps({"tcbInfo": v, "signature": "00" * 64}).encode()),
    )
)
def test_intel_collateral_parsers(data: bytes) -> None:
    only_attestation_errors(lambda: parse_tcb_info(split_pcs_body(data, "tcbInfo", "fuzz")))
    only_attestation_errors(lambda: parse_enclave_identity(split_pcs_body(data, "enclaveIdentity", "fuzz")))
    only_attestation_errors(lambda: CollateralStore().add_bytes(data, "fuzz"))


@FUZZ
@given(from_vectors(CRL))
def test_crl_loader(data: bytes) -> None:
    only_attestation_errors(lambda: load_crl(data, "fuzz", AttestationError))


@FUZZ
@given(from_vectors(QUOTES[0], SNP, NITRO, SOFTWARE, HCL, CERT))
def test_detect_and_inspect(data: bytes) -> None:
    only_attestation_errors(lambda: detect(data))
    located(lambda: inspect(data))


STORE = store(BY_ID["tdx-dcapqvl"])
AT = datetime(2025, 7, 1, tzinfo=UTC)
CERT_SETS = [BY_ID[i] for i in ("sgx-dcapqvl", "tdx-dcapqvl", "nitro-evervault-ga")]
CERT_STORES = [store(s) for s in CERT_SETS]


# A larger budget: a certificate field that makes cryptography raise something other than
# ValueError (x509.InvalidVersion, DuplicateExtension...) is one of a few hundred DER positions.
@settings(max_examples=N * 4, deadline=None, derandomize=FIXED, suppress_health_check=list(HealthCheck))
@given(
    st.integers(0, len(CERT_SETS) - 1).flatmap(
        lambda i: st.tuples(st.just(i), certificate_edited(evidence(CERT_SETS[i])))
    )
)
def test_certificates_inside_evidence(case: tuple[int, bytes]) -> None:
    i, data = case
    located(lambda: verify(data, at=at(CERT_SETS[i]), collateral=CERT_STORES[i], policy=Policy.genuine_only()))
    located(lambda: inspect(data))


@settings(max_examples=max(N // 3, 20), deadline=None, derandomize=FIXED, suppress_health_check=list(HealthCheck))
@given(edited(QUOTES[1]))
def test_full_verification_of_edited_quotes(data: bytes) -> None:
    located(lambda: verify(data, at=AT, collateral=STORE, policy=Policy.genuine_only()))


PEM_CHAIN = (VECTORS / "roots/intel_tcb_signing_chain_2025.pem").read_bytes()
ROOT_CRL = (VECTORS / "roots/intel_sgx_root_ca_crl_2025-03-20.der").read_bytes()
BUNDLE = (VECTORS / "sgx/dcap-qvl/sgx_quote_collateral.json").read_bytes()


@FUZZ
@given(from_vectors(PEM_CHAIN, ROOT_CRL, BUNDLE, INTEL_CERT, TCB_INFO))
def test_collateral_files(data: bytes) -> None:
    only_attestation_errors(lambda: CollateralStore().add_bytes(data, "fuzz"))
    only_attestation_errors(lambda: load_certificates(data, "fuzz", AttestationError))


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=512),
        st.lists(st.one_of(st.integers(-3, 3), st.binary(max_size=64)), max_size=9).map(
            lambda v: cbor2.dumps(cbor2.CBORTag(60000, v))
        ),
        st.lists(from_vectors(ROOT_CRL, PEM_CHAIN), min_size=7, max_size=7).map(
            lambda v: cbor2.dumps(cbor2.CBORTag(0x1A7501, [1, *v]))
        ),
    )
)
def test_ratls_endorsements(raw: bytes) -> None:
    def decode_and_add() -> None:
        Endorsements.decode(raw).add_to(CollateralStore())

    only_attestation_errors(decode_and_add)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_text_unwrapping_and_hex(data: bytes) -> None:
    assert isinstance(unwrap_text(data), bytes)  # never raises: undecodable text is left as it is
    try:
        from_hex(data.decode("utf-8", "replace"))
    except ValueError:
        pass


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".json", ".toml"]))
def test_policy_files(tmp_path_factory, data: bytes, suffix: str) -> None:
    path = tmp_path_factory.mktemp("policy") / f"p{suffix}"
    path.write_bytes(data)
    only_attestation_errors(lambda: P.load(str(path)))


@FUZZ
@given(
    st.sampled_from([QUOTES[0], evidence(BY_ID["snp-gosev-milan"])]),
    from_vectors(PEM_CHAIN, ROOT_CRL, TCB_INFO),
    st.text(max_size=200),
)
def test_fetch_with_hostile_responses(tmp_path_factory, quote: bytes, body: bytes, chain: str) -> None:
    """A PCS/PCCS or KDS answering garbage: only CollateralError (fetch never writes what it cannot parse)."""
    cache = tmp_path_factory.mktemp("cache")

    def get(url: str) -> tuple[bytes, dict[str, str]]:
        return body, {
            name: chain
            for name in ("tcb-info-issuer-chain", "sgx-enclave-identity-issuer-chain", "sgx-pck-crl-issuer-chain")
        }

    only_attestation_errors(lambda: fetch_for(quote, str(cache), get=get))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["accept_tcb_status", "allow_debug", "tees", "measurements", "min_svn", "report_data", "x"]),
        json_values,
    )
)
def test_policy_mapping(doc: dict) -> None:
    only_attestation_errors(lambda: P.from_mapping(doc))
