"""Collateral fetching against a local HTTP server that answers like Intel PCS/PCCS and AMD KDS (no internet)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from inclavare.attestation import CollateralError, CollateralStore, Policy, verify
from inclavare.attestation.fetch import fetch_for

from .vectors import BY_ID, VECTORS, at, evidence, run_cli

INTEL_CHAIN = (VECTORS / "roots/intel_tcb_signing_chain_2025.pem").read_text()
ROUTES: dict[str, tuple[bytes, dict[str, str]]] = {
    "/sgx/certification/v4/tcb?fmspc=00606A000000": (
        (VECTORS / "sgx/collateral-00606A000000-2025-08/sgx_tcbinfov3_00606a000000.json").read_bytes(),
        {"TCB-Info-Issuer-Chain": urllib.parse.quote(INTEL_CHAIN)},
    ),
    "/sgx/certification/v4/qe/identity": (
        (VECTORS / "sgx/collateral-00606A000000-2025-08/sgx_qeidentity_v4.json").read_bytes(),
        {"SGX-Enclave-Identity-Issuer-Chain": urllib.parse.quote(INTEL_CHAIN)},
    ),
    "/sgx/certification/v4/pckcrl?ca=platform&encoding=der": (
        (VECTORS / "sgx/collateral-00606A000000-2025-08/platform_crl.der").read_bytes(),
        {
            "SGX-PCK-CRL-Issuer-Chain": urllib.parse.quote(
                (VECTORS / "roots/intel_pck_platform_ca_chain.pem").read_text()
            )
        },
    ),
    # A PCCS serves the root CA CRL as hex text.
    "/sgx/certification/v4/rootcacrl": (
        (VECTORS / "roots/intel_sgx_root_ca_crl_2025-03-20.der").read_bytes().hex().encode(),
        {},
    ),
    "/vcek/v1/Milan/cert_chain": ((VECTORS / "roots/amd_milan_ask_ark.pem").read_bytes(), {}),
    "/vcek/v1/Milan/c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e"
    "?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115": ((VECTORS / "snp/trustee/test-vcek.der").read_bytes(), {}),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        body, headers = ROUTES.get(self.path, (b"not found", {}))
        self.send_response(200 if self.path in ROUTES else 404)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_intel_collateral_is_fetched_cached_and_verifies_offline(server: ThreadingHTTPServer, tmp_path: Path) -> None:
    s = BY_ID["sgx-occlum"]
    written = fetch_for(evidence(s), str(tmp_path), pcs_url=url(server))
    assert len(server.requests) == 4  # type: ignore[attr-defined]
    assert any("/intel/tcbinfo/sgx-00606A000000-" in p for p in written)
    result = verify(evidence(s), at=at(s), collateral=CollateralStore.open(str(tmp_path)), policy=Policy.genuine_only())
    assert result.tcb.status.value == "OutOfDate"


def test_amd_vcek_is_fetched_for_a_v2_report(server: ThreadingHTTPServer, tmp_path: Path) -> None:
    s = BY_ID["snp-trustee-milan"]
    rc, out, err = run_cli("fetch", str(VECTORS / s["files"]["report"]), "--cache", str(tmp_path), "--kds", url(server))
    assert rc == 0, err
    assert len(out.splitlines()) == 3  # ASK, ARK, VCEK
    rc, out, err = run_cli(
        "verify", str(VECTORS / s["files"]["report"]), "--collateral", str(tmp_path), "--at", s["verify_at"]
    )
    assert rc == 0, err
    assert json.loads(out)["claims"]["product"] == "Milan"


def test_fetch_failures_are_collateral_errors(server: ThreadingHTTPServer, tmp_path: Path) -> None:
    s = BY_ID["tdx-dcapqvl"]  # FMSPC B0C06F000000 is not served here
    with pytest.raises(
        CollateralError, match=r"fetch http://127\.0\.0\.1:.*/tdx/certification/v4/tcb\?fmspc=B0C06F000000"
    ):
        fetch_for(evidence(s), str(tmp_path), pcs_url=url(server))
    vlek = BY_ID["snp-trustee-vlek-aws"]
    with pytest.raises(CollateralError, match="VLEK certificates are not served by AMD KDS"):
        fetch_for(evidence(vlek), str(tmp_path), kds_url=url(server))


def test_nitro_and_software_need_nothing(tmp_path: Path) -> None:
    assert fetch_for(evidence(BY_ID["nitro-evervault-ga"]), str(tmp_path / "c")) == []
