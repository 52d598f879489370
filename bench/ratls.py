"""Attested TLS handshake time vs a plain TLS handshake with the same key type (not a test).

Run: ``.venv/bin/python bench/ratls.py [--rounds 300]``. Both sides run in
this process (server in a thread) over 127.0.0.1, TLS 1.3, ECDSA P-256
certificates, no session tickets (every handshake is a full one), client
timing from ``connect()`` to "handshake done and peer appraised". Cases:

* plain: a self-signed P-256 certificate without evidence; the client does
  no verification at all (``CERT_NONE``), the cheapest possible baseline;
* ra-tls: the server's certificate carries software evidence
  (:mod:`inclavare.attestation.attesters.software`); the client appraises
  it through :meth:`VerifyPolicy.verify_certificate` (certificate parse and
  self-signature, COSE/Ed25519 evidence signature, key binding, policy);
* the same two in mutual mode (plain mutual = client certificate requested,
  chain verification deferred as for RA-TLS, no appraisal).

The certificate is issued once per context (as rats-tls does at init), so its
cost is reported separately. Prints medians (ms) and the ratios measured in
this one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from inclavare._sys.sslverify import defer_chain_verification  # noqa: E402
from inclavare.attestation import CollateralStore, Policy  # noqa: E402
from inclavare.attestation.attesters import SoftwareAttester  # noqa: E402
from inclavare.attestation.ratls import (  # noqa: E402
    RatlsCertificate,
    RatlsContext,
    VerifyPolicy,
    accept,
    client_context,
    connect,
    generate_key,
    issue,
    server_context,
)
from inclavare.attestation.ratls.certificate import SUBJECT  # noqa: E402
from inclavare.attestation.ratls.context import _load_certificate  # noqa: E402
from inclavare.enclave.identity import EnclaveIdentity, HostKey  # noqa: E402

IDENTITY = EnclaveIdentity(measurement=b"M" * 32, signer=b"S" * 32, isv_prod_id=1, isv_svn=1, debug=False)
HOST_KEY = HostKey.from_seed(bytes(32))


def plain_contexts(mutual: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    def cert() -> RatlsCertificate:
        key = generate_key()
        now = datetime.now(UTC)
        builder = x509.CertificateBuilder().subject_name(SUBJECT).issuer_name(SUBJECT).public_key(key.public_key())
        builder = builder.serial_number(1).not_valid_before(now - timedelta(hours=1))
        der = builder.not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
        return RatlsCertificate(der, key, None)  # type: ignore[arg-type]

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.num_tickets = 0
    _load_certificate(server, cert())
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    if mutual:
        _load_certificate(client, cert())
        server.verify_mode = ssl.CERT_REQUIRED
        defer_chain_verification(server)
    return server, client


Dial = Callable[[tuple[str, int]], None]
Serve = Callable[[socket.socket], None]


def measure(rounds: int, serve: Serve, dial: Dial, warmup: int = 5) -> list[float]:
    """Client-side ms per handshake for ``rounds`` handshakes (after ``warmup`` unmeasured ones)."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()
    thread = threading.Thread(target=lambda: [serve(listener) for _ in range(rounds + warmup)])
    thread.start()
    times = []
    for i in range(rounds + warmup):
        start = time.perf_counter()
        dial(address)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    thread.join()
    listener.close()
    return times


def plain_case(mutual: bool) -> tuple[Serve, Dial]:
    server, client = plain_contexts(mutual)

    def serve(listener: socket.socket) -> None:
        sock, _ = listener.accept()
        server.wrap_socket(sock, server_side=True).close()

    def dial(address: tuple[str, int]) -> None:
        tls = client.wrap_socket(socket.create_connection(address))
        tls.getpeercert(binary_form=True)
        tls.close()

    return serve, dial


def ratls_case(mutual: bool) -> tuple[Serve, Dial]:
    attester = SoftwareAttester(IDENTITY, HOST_KEY)
    store = CollateralStore()
    store.add_host_key(HOST_KEY.public_key)
    policy = VerifyPolicy(Policy(allow_software=True, measurements=frozenset({b"M" * 32})), store)
    server: RatlsContext = server_context(attester, verify_policy=policy if mutual else None)
    client = client_context(policy, attester=attester if mutual else None)

    def serve(listener: socket.socket) -> None:
        accept(listener, server).close()

    def dial(address: tuple[str, int]) -> None:
        conn = connect(address, client)
        assert conn.peer is not None
        conn.close()

    return serve, dial


def issuance(rounds: int) -> list[float]:
    attester = SoftwareAttester(IDENTITY, HOST_KEY)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        issue(attester, now=datetime.now(UTC))
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400, help="handshakes per case")
    parser.add_argument("--blocks", type=int, default=8, help="interleaved blocks (damps background load)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases = {
        "plain": plain_case(False),
        "ra-tls": ratls_case(False),
        "plain mutual": plain_case(True),
        "ra-tls mutual": ratls_case(True),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    per_block = max(1, args.rounds // args.blocks)
    for _ in range(args.blocks):  # plain and attested alternate, so drift in load hits both
        for name, (serve, dial) in cases.items():
            results[name] += measure(per_block, serve, dial)
    results["certificate issuance"] = issuance(max(20, args.rounds // 10))
    medians = {name: statistics.median(times) for name, times in results.items()}
    ratios = {
        "ra-tls / plain": medians["ra-tls"] / medians["plain"],
        "ra-tls mutual / plain mutual": medians["ra-tls mutual"] / medians["plain mutual"],
    }
    if args.json:
        print(json.dumps({"median_ms": medians, "ratios": ratios, "rounds": per_block * args.blocks}, indent=2))
        return
    print(f"# {platform.python_implementation()} {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
          f"{per_block * args.blocks} handshakes per case in {args.blocks} interleaved blocks")  # fmt: skip
    print(f"{'case':<24} {'median ms':>10} {'p90 ms':>8}")
    for name, times in results.items():
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:<24} {medians[name]:>10.3f} {p90:>8.3f}")
    for name, ratio in ratios.items():
        print(f"{name:<28} {ratio:.2f}x")


if __name__ == "__main__":
    main()
