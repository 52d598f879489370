"""Fetch collateral from Intel PCS / a PCCS and AMD KDS into a cache directory.

This is the only module that touches the network, and verification never
calls it: run it ahead of time (``inclavare evidence fetch``), then verify
offline from the cache (:class:`~.collateral.CollateralStore`). Everything
fetched is parsed and classified by the store before it is written, so the
cache only ever holds well-formed collateral (signatures are checked at
verification time, against the pinned roots).

Intel (PCS API v4, ``https://api.trustedservices.intel.com``; a PCCS serves
the same paths): ``/{sgx|tdx}/certification/v4/tcb?fmspc=`` (issuer chain
in the ``TCB-Info-Issuer-Chain`` header), ``/{sgx|tdx}/certification/v4/qe/identity``
(``SGX-Enclave-Identity-Issuer-Chain``), ``/sgx/certification/v4/pckcrl?ca=
{processor|platform}&encoding=der`` (``SGX-PCK-CRL-Issuer-Chain``) and the
Root CA CRL (``https://certificates.trustedservices.intel.com/IntelSGXRootCA.der``,
or ``/sgx/certification/v4/rootcacrl`` on a PCCS). AMD (KDS spec 57230,
``https://kdsintf.amd.com``): ``/vcek/v1/{product}/cert_chain`` and
``/vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=[&fmcSPL=]``.
VLEKs are not publicly served; put them in the cache by hand.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping

from .claims import EvidenceKind
from .collateral import CollateralStore
from .errors import AttestationError, CollateralError
from .formats import detect
from .hazmat import certs as xc
from .hazmat import ratls, x509lite
from .hazmat.hcl import parse_hcl_report
from .hazmat.hextext import from_hex
from .hazmat.pck import pck_extensions
from .hazmat.quote import parse_quote
from .hazmat.snp import SnpReport, decode_tcb, parse_report, product_from_cpuid

PCS = "https://api.trustedservices.intel.com"
ROOT_CRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
KDS = "https://kdsintf.amd.com"
MAX_RESPONSE = 4 << 20

Getter = Callable[[str], tuple[bytes, Mapping[str, str]]]


def http_get(url: str, timeout: float = 30.0) -> tuple[bytes, Mapping[str, str]]:
    """GET ``url``; body (at most 4 MiB) and headers, or CollateralError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE + 1)
            headers = {k.lower(): v for k, v in response.headers.items()}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CollateralError(f"fetch {url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_RESPONSE:
        raise CollateralError(f"fetch {url}: response larger than 4 MiB")
    return body, headers


def fetch_for(
    evidence: bytes, cache: str, *, pcs_url: str | None = None, kds_url: str | None = None, get: Getter = http_get
) -> list[str]:
    """Fetch what ``evidence`` needs, store it under ``cache``; the paths written."""
    kind = detect(evidence)
    store = CollateralStore()
    if kind == EvidenceKind.RATLS_CERTIFICATE:
        evidence = ratls.extract(x509lite.load(evidence)).evidence
        kind = detect(evidence)
    if kind in (EvidenceKind.SGX_QUOTE, EvidenceKind.TDX_QUOTE):
        fetch_intel(evidence, store, base=pcs_url or PCS, get=get)
    elif kind in (EvidenceKind.SNP_REPORT, EvidenceKind.AZURE_HCL_REPORT):
        raw = parse_hcl_report(evidence).hardware_report if kind == EvidenceKind.AZURE_HCL_REPORT else evidence
        fetch_amd(parse_report(raw), store, base=kds_url or KDS, get=get)
    return store.save(cache)


def fetch_intel(quote_bytes: bytes, store: CollateralStore, *, base: str = PCS, get: Getter = http_get) -> None:
    quote = parse_quote(quote_bytes, allow_trailing_garbage=True)
    chain = xc.load_certificates(quote.cert_data, "quote PCK chain", CollateralError)
    pck = pck_extensions(chain[0])
    ca = "processor" if "Processor" in xc.common_name(chain[0].issuer) else "platform"
    tee = quote.tee
    base = base.rstrip("/")
    fmspc = pck.fmspc.hex().upper()
    _add(store, get, f"{base}/{tee}/certification/v4/tcb?fmspc={fmspc}", "tcb-info-issuer-chain")
    _add(store, get, f"{base}/{tee}/certification/v4/qe/identity", "sgx-enclave-identity-issuer-chain")
    _add(store, get, f"{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der", "sgx-pck-crl-issuer-chain")
    root_crl = ROOT_CRL if base == PCS else f"{base}/sgx/certification/v4/rootcacrl"
    _add(store, get, root_crl, None)


def fetch_amd(report: SnpReport, store: CollateralStore, *, base: str = KDS, get: Getter = http_get) -> None:
    if report.signing_key != "VCEK":
        raise CollateralError(f"fetch: {report.signing_key} certificates are not served by AMD KDS; add them by hand")
    base = base.rstrip("/")
    products = [product_from_cpuid(report.cpuid)] if report.cpuid else ["Milan", "Genoa"]
    failure: AttestationError | None = None
    for product in products:
        assert product is not None
        try:
            _add(store, get, f"{base}/vcek/v1/{product}/cert_chain", None)
            _add(store, get, _vcek_url(base, product, report), None)
            return
        except CollateralError as exc:
            failure = failure or exc
    assert failure is not None
    raise failure


def _vcek_url(base: str, product: str, report: SnpReport) -> str:
    tcb = decode_tcb(report.reported_tcb, product)
    hwid = report.chip_id[:8] if product == "Turin" else report.chip_id
    query = {"blSPL": tcb.bootloader, "teeSPL": tcb.tee, "snpSPL": tcb.snp, "ucodeSPL": tcb.microcode}
    if tcb.fmc is not None:
        query["fmcSPL"] = tcb.fmc
    return f"{base}/vcek/v1/{product}/{hwid.hex()}?{urllib.parse.urlencode(query)}"


def _add(store: CollateralStore, get: Getter, url: str, chain_header: str | None) -> None:
    body, headers = get(url)
    text = body.strip().removeprefix(b"0x").removeprefix(b"0X")
    if text and all(c in b"0123456789abcdefABCDEF\r\n" for c in text):
        try:
            body = from_hex(body.decode())  # a PCCS serves the root CA CRL as hex
        except ValueError:
            raise CollateralError(
                f"fetch {url}: the body looks like hex but is not (an odd number of digits?)"
            ) from None
    store.add_bytes(body, url)
    if chain_header is not None:
        chain = headers.get(chain_header)
        if not chain:
            raise CollateralError(f"fetch {url}: no {chain_header} header")
        store.add_bytes(urllib.parse.unquote(chain).encode(), f"{url} {chain_header}")
