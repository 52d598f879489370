"""The KBS over real HTTP: `inclavare kbs serve` (uvicorn + starlette) in a child process, SQLite storage.

The RCAR flow end to end, and every refusal with the status and RFC 7807
body trustee would give — each checked to release nothing.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import cbor2
import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.enclave.identity import verify_signature
from inclavare.kbs.admin import admin_token
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.kbs.client import KbsClient, KbsClientError, attest_and_fetch, tls_verify
from inclavare.kbs.errors import ERROR_TYPE_PREFIX, JweError
from inclavare.kbs.jwe import TeeKey, b64url, b64url_decode
from inclavare.kbs.protocol.handshake import ClientHandshake
from inclavare.kbs.protocol.session import session_key
from inclavare.kbs.token import sign_jwt
from inclavare.testing.kbs import KbsProcess, World

SECRET = b"postgres://app:s3cr3t-pa55w0rd@db/prod\x00\xfe"
OTHER = b"tls-private-key-bytes-0123456789"
UNLIMITED = "\n[rate_limit]\nenabled = false\n"
VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-rcar")))


@pytest.fixture(scope="module")
def kbs(world):
    with KbsProcess(world.config("rcar", extra=UNLIMITED)) as k:
        with KbsAdmin(k.url, world.admin_key) as admin:
            admin.set_resource("default/key/db", SECRET)
            admin.set_resource("default/cert/tls", OTHER)
            admin.set_resource("tenant-a/key/db", b"tenant-a secret")
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        yield k


@pytest.fixture
def attester(world) -> SoftwareAttester:
    return SoftwareAttester(verify_signature(world.manifest, world.sig, world.rootfs), world.host_key)


def releases(kbs: KbsProcess, world: World) -> list[dict[str, object]]:
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        return [r for r in admin.audit(limit=1000) if r["event"] == "release"]


def problem(response: httpx.Response, status: int, name: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == ERROR_TYPE_PREFIX + name
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


class Raw:
    """One KBC speaking RCAR by hand, so that each step can be broken."""

    def __init__(
        self, kbs: KbsProcess, attester: SoftwareAttester, key: TeeKey | None = None, tee: str = "software"
    ) -> None:
        self.http = httpx.Client(base_url=kbs.url, timeout=10)
        self.attester = attester
        self.key = key or TeeKey.generate()
        self.hs = ClientHandshake(tee, self.key.public_jwk())

    def auth(self) -> bytes:
        response = self.http.post("/kbs/v0/auth", json=self.hs.request())
        assert response.status_code == 200
        assert response.cookies.get("kbs-session-id")
        return self.hs.challenge(response.json())

    def attest(self, body: dict[str, object]) -> httpx.Response:
        return self.http.post("/kbs/v0/attest", json=body)

    def get(self, path: str = "default/key/db", **kw: object) -> httpx.Response:
        return self.http.get(f"/kbs/v0/resource/{path}", **kw)


def test_attest_and_fetch_end_to_end(kbs, attester):
    got = attest_and_fetch(kbs.url, attester, ["default/key/db", "default/cert/tls"])
    assert got == {"default/key/db": SECRET, "default/cert/tls": OTHER}
    got = attest_and_fetch(kbs.url, attester, ["default/key/db"], tee_key=TeeKey.generate("RSA"))
    assert got == {"default/key/db": SECRET}


def test_the_session_cookie_and_the_token_both_work(kbs, attester, world):
    raw = Raw(kbs, attester)
    evidence = attester.collect_evidence(raw.auth()).data
    response = raw.attest(raw.hs.attestation(evidence))
    token = ClientHandshake.token(response.json())
    assert raw.key.decrypt(raw.get().json()) == SECRET
    bearer = httpx.get(f"{kbs.url}/kbs/v0/resource/default/key/db", headers={"Authorization": f"Bearer {token}"})
    assert raw.key.decrypt(bearer.json()) == SECRET


def test_malformed_and_unknown_requests(kbs):
    http = httpx.Client(base_url=kbs.url)
    problem(http.post("/kbs/v0/auth", content=b"{nope"), 400, "InvalidRequest")
    body = problem(http.post("/kbs/v0/auth", json={"version": "0.1.1", "tee": "software"}), 401, "AttestationError")
    assert "version mismatch" in body["detail"]
    problem(http.post("/kbs/v0/auth", json={"version": "0.4.0", "tee": "cca"}), 401, "AttestationError")
    problem(http.post("/kbs/v0/auth", content=b"x" * (2 << 20)), 413, "PayloadTooLarge")
    problem(http.get("/kbs/v0/resource/default/key/-db"), 404, "InvalidRequestPath")
    problem(http.get("/kbs/v0/resource/default/key"), 404, "InvalidRequestPath")
    problem(http.get("/kbs/v0/nothing"), 404, "InvalidRequestPath")
    problem(http.put("/kbs/v0/auth"), 405, "MethodNotAllowed")


def test_missing_cookie_or_token(kbs, attester, world):
    before = len(releases(kbs, world))
    raw = Raw(kbs, attester)
    problem(raw.get(), 401, "TokenNotFound")
    problem(raw.get(headers={"Cookie": "kbs-session-id=forged"}), 401, "TokenNotFound")
    report_data = raw.auth()
    problem(raw.get(), 401, "TokenNotFound")  # authed, not attested
    raw.http.cookies.clear()
    body = problem(raw.attest(raw.hs.attestation(attester.collect_evidence(report_data).data)), 401, "AttestationError")
    assert body["detail"] == "attestation failed: no session"
    assert len(releases(kbs, world)) == before


def test_a_malformed_attestation_is_a_401_that_spends_the_nonce(kbs, attester, world):
    raw = Raw(kbs, attester)
    body = raw.hs.attestation(attester.collect_evidence(raw.auth()).data)
    good = json.loads(json.dumps(body))
    del body["runtime-data"]["nonce"]
    assert problem(raw.attest(body), 401, "AttestationError")["detail"] == "attestation failed: malformed request"
    problem(raw.get(), 401, "TokenNotFound")
    assert problem(raw.attest(good), 401, "AttestationError")["detail"] == "attestation failed: challenge spent"


def test_replayed_nonce_is_refused(kbs, attester, world):
    before = len(releases(kbs, world))
    first = Raw(kbs, attester)
    old_body = first.hs.attestation(attester.collect_evidence(first.auth()).data)
    assert first.attest(old_body).status_code == 200
    # the same Attestation again, on its own session, and on a fresh one
    assert problem(first.attest(old_body), 401, "AttestationError")["detail"] == "attestation failed: challenge spent"
    second = Raw(kbs, attester, first.key)
    second.auth()
    assert problem(second.attest(old_body), 401, "AttestationError")["detail"] == "attestation failed: nonce mismatch"
    problem(second.get(), 401, "TokenNotFound")
    assert len(releases(kbs, world)) == before


def _bad_version(der: bytes) -> bytes:
    """X.509 version v3 -> 3: cryptography raises x509.InvalidVersion (not a ValueError)."""
    at = der.index(b"\xa0\x03\x02\x01\x02") + 4
    return der[:at] + b"\x03" + der[at + 1 :]


def corrupted_evidence(tee: str) -> bytes:
    """A genuine quote or Nitro document with one byte of its leaf certificate corrupted (tests/vectors)."""
    if tee == "nitro":
        cose = cbor2.loads((VECTORS / "nitro/evervault/valid-attestation-doc.bin").read_bytes())
        payload = cbor2.loads(cose[2])
        payload["certificate"] = _bad_version(payload["certificate"])
        cose[2] = cbor2.dumps(payload)
        return cbor2.dumps(cose)
    quote = (VECTORS / {"sgx": "sgx/dcap-qvl/sgx_quote.bin", "tdx": "tdx/dcap-qvl/tdx_quote.bin"}[tee]).read_bytes()
    pem = re.search(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END", quote)
    assert pem is not None
    encoded = iter(base64.b64encode(_bad_version(base64.b64decode(re.sub(rb"\s", b"", pem.group(1))))))
    changed = bytes(ch if chr(ch).isspace() else next(encoded) for ch in pem.group(1))
    return quote[: pem.start(1)] + changed + quote[pem.end(1) :]


def attest_records(kbs: KbsProcess, world: World, raw: Raw) -> list[dict[str, object]]:
    subject = "session:" + session_key(raw.http.cookies["kbs-session-id"])[:16]
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        return [r for r in admin.audit(limit=1000) if r["event"] == "attest" and r["subject"] == subject]


@pytest.mark.parametrize("tee", ["sgx", "tdx", "nitro"])
def test_corrupted_certificates_in_evidence_are_a_401_that_burns_the_nonce(kbs, attester, world, tee):
    """Was a 500, twice on one session, with nothing audited: a peer could probe evidence variants."""
    raw = Raw(kbs, attester, tee=tee)
    raw.auth()
    details = [
        problem(raw.attest(raw.hs.attestation(corrupted_evidence(tee))), 401, "AttestationError")["detail"]
        for _ in range(2)
    ]  # the category; the reason is for the audit log, not the peer
    assert details == ["attestation failed: malformed request", "attestation failed: challenge spent"]
    problem(raw.get(), 401, "TokenNotFound")
    records = attest_records(kbs, world, raw)
    assert [r["outcome"] for r in records] == ["failed", "failed"]
    assert "not a valid X.509 certificate (InvalidVersion" in str(records[0]["detail"])
    assert "nonce already used" in str(records[1]["detail"])
    assert "InvalidVersion" in kbs.log()
    assert "internal error" not in kbs.log().lower()


def test_a_deeply_nested_tee_key_is_a_401(kbs, attester, world):
    """Canonicalising 900 nested arrays for the binding recursed out of the stack: a 500."""
    raw = Raw(kbs, attester)
    report_data = raw.auth()
    nested: object = "x"
    for _ in range(900):
        nested = [nested]
    body = raw.hs.attestation(attester.collect_evidence(report_data).data)
    body["runtime-data"]["tee-pubkey"] = {**raw.key.public_jwk(), "x5c": nested}
    assert problem(raw.attest(body), 401, "AttestationError")["detail"] == "attestation failed: malformed request"
    assert "nested too deeply" in str(attest_records(kbs, world, raw)[0]["detail"])
    problem(raw.attest(raw.hs.attestation(attester.collect_evidence(report_data).data)), 401, "AttestationError")


def test_evidence_bound_to_another_key(kbs, attester, world):
    before = len(releases(kbs, world))
    raw = Raw(kbs, attester)
    body = raw.hs.attestation(attester.collect_evidence(raw.auth()).data)
    body["runtime-data"]["tee-pubkey"] = TeeKey.generate().public_jwk()  # an attacker's key, someone else's evidence
    assert problem(raw.attest(body), 401, "AttestationError")["detail"] == "attestation failed: report data mismatch"
    problem(raw.get(), 401, "TokenNotFound")
    assert len(releases(kbs, world)) == before


def test_expired_and_foreign_tokens(kbs, attester, world):
    raw = Raw(kbs, attester)
    token = ClientHandshake.token(raw.attest(raw.hs.attestation(attester.collect_evidence(raw.auth()).data)).json())
    with open(f"{world.root}/token.pem", "rb") as f:
        kbs_key = serialization.load_pem_private_key(f.read(), password=None)
    head, payload, _ = token.split(".")
    claims = json.loads(b64url_decode(payload))
    expired = sign_jwt({**claims, "iat": int(time.time()) - 600, "exp": int(time.time()) - 1}, kbs_key)  # type: ignore[arg-type]
    http = httpx.Client(base_url=kbs.url)
    url = "/kbs/v0/resource/default/key/db"
    assert problem(http.get(url, headers={"Authorization": f"Bearer {expired}"}), 401, "TokenVerifierError")
    forged = f"{head}.{b64url(json.dumps({**claims, 'exp': int(time.time()) + 10**6}).encode())}.{token.split('.')[2]}"
    problem(http.get(url, headers={"Authorization": f"Bearer {forged}"}), 401, "TokenVerifierError")
    problem(http.get(url, headers={"Authorization": "Basic YTpi"}), 401, "TokenVerifierError")
    assert raw.key.decrypt(http.get(url, headers={"Authorization": f"Bearer {token}"}).json()) == SECRET


def test_policy_deny_releases_nothing(kbs, attester, world):
    before = len(releases(kbs, world))
    with KbsClient(kbs.url, attester) as client:
        for path in ("tenant-a/key/db", "tenant-a/key/absent"):  # no policy covers tenant-a/*: 403, exists or not
            with pytest.raises(KbsClientError) as exc:
                client.get_resource(path)
            assert (exc.value.status, exc.value.problem, exc.value.detail) == (
                403,
                "PolicyDeny",
                "access denied by policy",
            )
        with pytest.raises(KbsClientError) as exc:
            client.get_resource("default/key/absent")
        assert (exc.value.status, exc.value.problem) == (404, "ResourceNotFound")
        with KbsAdmin(kbs.url, world.tenant_key) as tenant:  # tenant-a's own admin opens its subtree
            tenant.set_resource_policy(builtin="approved-executables", scope="tenant-a/*")
        assert client.get_resource("tenant-a/key/db") == b"tenant-a secret"
        with KbsAdmin(kbs.url, world.tenant_key) as tenant:
            tenant.set_resource_policy(builtin="deny-all", scope="tenant-a/key/db")
        with pytest.raises(KbsClientError, match="403"):
            client.get_resource("tenant-a/key/db")
    audit = releases(kbs, world)
    assert [r["resource"] for r in audit[before:]] == ["tenant-a/key/db"]


def test_tampered_jwe_does_not_decrypt(kbs, attester):
    raw = Raw(kbs, attester)
    raw.attest(raw.hs.attestation(attester.collect_evidence(raw.auth()).data))
    response = raw.get().json()
    for field in ("ciphertext", "tag", "iv", "encrypted_key", "protected"):
        blob = bytearray(b64url_decode(response[field]))
        blob[0] ^= 0x80
        with pytest.raises(JweError):
            raw.key.decrypt({**response, field: b64url(bytes(blob))})
    assert raw.key.decrypt(response) == SECRET


def test_admin_api_needs_a_valid_admin_token(kbs, world):
    http = httpx.Client(base_url=kbs.url)
    calls = [
        ("POST", "/kbs/v0/resource/default/key/db", {"content": b"overwritten"}),
        ("DELETE", "/kbs/v0/resource/default/key/db", {}),
        ("GET", "/kbs/v0/resources", {}),
        ("POST", "/kbs/v0/resource-policy", {"json": {"builtin": "allow-all"}}),
        ("POST", "/kbs/v0/attestation-policy", {"json": {"builtin": "allow-software"}}),
        ("POST", "/kbs/v0/reference-value", {"json": {"name": "software.measurement", "values": ["00"]}}),
        ("GET", "/kbs/v0/audit", {}),
    ]
    from cryptography.hazmat.primitives.asymmetric import ed25519

    stranger = admin_token(ed25519.Ed25519PrivateKey.generate(), time.time())
    stale = admin_token(world.admin_key, time.time() - 7200)
    for method, route, kw in calls:
        problem(http.request(method, route, **kw), 401, "AdminAuth")
        for token in (stranger, stale):
            problem(http.request(method, route, headers={"Authorization": f"Bearer {token}"}, **kw), 401, "AdminAuth")
    tenant = {"Authorization": "Bearer " + admin_token(world.tenant_key, time.time())}
    problem(http.post("/kbs/v0/resource/default/key/db", content=b"x", headers=tenant), 403, "AdminAccessDenied")
    problem(
        http.post("/kbs/v0/resource-policy", json={"builtin": "allow-all"}, headers=tenant), 403, "AdminAccessDenied"
    )
    problem(http.get("/kbs/v0/audit", headers=tenant), 403, "AdminAccessDenied")
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        assert "default/key/db" in admin.list_resources()
        assert not [
            r for r in admin.audit(limit=1000) if r["event"].startswith("resource.") and r["detail"] == "11 bytes"
        ]
    with KbsAdmin(kbs.url, world.tenant_key) as tenant_admin:
        assert tenant_admin.list_resources() == ["tenant-a/key/db"]
    with KbsAdmin(kbs.url, world.admin_key) as admin, pytest.raises(KbsClientError, match="400 InvalidPolicy"):
        admin.set_resource_policy(policy="package policy\nallow if {", scope="default/*")


def test_retries_with_one_idempotency_key_release_once(kbs, attester, world):
    raw = Raw(kbs, attester)
    raw.attest(raw.hs.attestation(attester.collect_evidence(raw.auth()).data))
    for _ in range(3):
        assert raw.key.decrypt(raw.get(headers={"Idempotency-Key": "retry-key-0001"}).json()) == SECRET
    mine = [r for r in releases(kbs, world) if r.get("request_key") == "retry-key-0001"]
    assert [r["deliveries"] for r in mine] == [3]


def test_metrics_in_trustee_families(kbs, attester):
    attest_and_fetch(kbs.url, attester, ["default/key/db"])
    text = httpx.get(f"{kbs.url}/metrics").text
    for family in (
        "kbs_http_requests_total",
        "kbs_http_request_duration_seconds_bucket",
        "kbs_http_active_connections",
        "kbs_auth_requests_total",
        'kbs_attestation_successes_total{tee_type="software"}',
        'kbs_attestation_failures_total{tee_type="software"}',
        "kbs_policy_violations_total",
        'kbs_resource_reads_total{repository="default"}',
    ):
        assert family in text
    assert "key/db" not in text  # /metrics is unauthenticated: no resource names
    assert 'route="/kbs/v0/resource/{repository}/{type}/{tag}"' in text
    assert "/healthz" not in text  # not counted, as in trustee


def test_no_secret_in_server_log_or_audit_file(kbs, world):
    log = kbs.log().encode()
    with open(f"{world.root}/rcar-audit.jsonl", "rb") as f:
        audit = f.read()
    assert b'"event":"release"' in audit
    for blob in (log, audit):
        for secret in (SECRET, SECRET[:16], OTHER, b"tenant-a secret"):
            assert secret not in blob


def test_rate_limit_answers_429(world):
    extra = (
        "\n[rate_limit]\nper_address = { rate = 0.5, burst = 3 }\nper_session = { rate = 0.5, burst = 2 }\n"
        "trust_forwarded_for = true\n"
    )
    with KbsProcess(world.config("limited", extra=extra)) as k:
        http = httpx.Client(base_url=k.url)
        hello = {"version": "0.4.0", "tee": "software"}
        statuses = [http.post("/kbs/v0/auth", json=hello).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = http.post("/kbs/v0/auth", json=hello)
        problem(response, 429, "TooManyRequests")
        assert 1 <= int(response.headers["Retry-After"]) <= 2
        assert http.get("/healthz").status_code == 200  # operations endpoints are not limited
        # behind a trusted proxy each client address has its own bucket; one session still has one
        for i, expected in enumerate([401, 401, 429]):
            headers = {"X-Forwarded-For": f"10.0.0.{i}", "Cookie": "kbs-session-id=one-session"}
            assert http.get("/kbs/v0/resource/default/key/db", headers=headers).status_code == expected
        assert http.post("/kbs/v0/auth", json=hello, headers={"X-Forwarded-For": "10.0.0.9"}).status_code == 200
        metrics = http.get("/metrics").text
        assert 'kbs_rate_limited_total{key="address"} 2.0' in metrics
        assert 'kbs_rate_limited_total{key="session"} 1.0' in metrics


def self_signed(root: str) -> tuple[str, str]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kbs.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = f"{root}/tls.crt", f"{root}/tls.key"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


def test_https(world, attester):
    cert, key = self_signed(world.root)
    config = world.config("tls", extra=UNLIMITED)
    with open(config) as f:
        text = f.read().replace("[http]\n", f'[http]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1)
    with open(config, "w") as f:
        f.write(text)
    with KbsProcess(config) as k:
        url = k.url.replace("http://", "https://")
        with KbsAdmin(url, world.admin_key, verify=cert) as admin:
            admin.set_resource("default/key/db", SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        assert attest_and_fetch(url, attester, ["default/key/db"], verify=cert) == {"default/key/db": SECRET}
        with pytest.raises(KbsClientError, match="unreachable"):
            attest_and_fetch(url, attester, ["default/key/db"], retries=0)  # an unknown CA is not trusted
        auth = httpx.post(f"{url}/kbs/v0/auth", json={"version": "0.4.0", "tee": "software"}, verify=tls_verify(cert))
        assert "secure" in auth.headers["set-cookie"].lower()
