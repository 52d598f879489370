"""Secret provisioning: what the host may choose (KbsPlan) and what the enclave side trusts (decide_trust)."""

from __future__ import annotations

import base64
import hashlib
import ssl

import pytest

from inclavare.enclave.config import read_settings
from inclavare.enclave.identity.broker import BrokerPin
from inclavare.enclave.provision import KbsPlan, decide_trust, receive, write_secrets
from inclavare.enclave.provision.pin import BrokerNotTrusted, BrokerTrust
from inclavare.errors import EnclaveError

PIN = hashlib.sha256(b"broker key").digest()


def plan_of(annotations: dict[str, str]) -> KbsPlan | None:
    return KbsPlan.from_settings(read_settings({"enclave.kbs.resources": "default/key/db", **annotations}, []))


@pytest.mark.parametrize(
    ("url", "urls"),
    [
        ("https://kbs.example:8080", ["https://kbs.example:8080"]),
        ("https://B.example/, https://a.example:8443", ["https://b.example:443", "https://a.example:8443"]),
    ],
)
def test_the_host_names_replicas_in_its_order(url, urls):
    plan = plan_of({"enclave.kbs.url": url})
    assert plan is not None
    assert (plan.urls, plan.url_source) == (urls, "annotations.enclave.kbs.url")
    assert not plan.insecure_unpinned


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080", "'http://127.0.0.1:8080' must be https: TLS ends inside the enclave$"),
        ("http://localhost:8080", "'http://localhost:8080' must be https"),
        ("ftp://kbs.example", "'ftp://kbs.example' must be https"),
        ("https://a.example,http://b.example", "'http://b.example' must be https"),  # every replica
        ("https://a.example/?q", r"'https://a.example/\?q' must be https://host\[:port\]\[/path\], without user"),
    ],
)
def test_a_broker_is_reached_over_https_only(url, reason):
    """Before, plain http was accepted to a loopback address: the relay on the host then read every message."""
    with pytest.raises(EnclaveError, match=f"^annotations.enclave.kbs.url: {reason}"):
        plan_of({"enclave.kbs.url": url})


def test_the_opt_out_and_the_host_ca_are_checked(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"PEM")
    plan = plan_of({"enclave.kbs.url": "https://a.example", "enclave.kbs.insecure_unpinned": "true",
                    "enclave.kbs.cacert": str(ca)})  # fmt: skip
    assert plan is not None
    assert (plan.insecure_unpinned, plan.cacert_pem) == (True, b"PEM")
    with pytest.raises(EnclaveError, match=r"^annotations\.enclave\.kbs\.insecure_unpinned: must be true or false$"):
        plan_of({"enclave.kbs.url": "https://a.example", "enclave.kbs.insecure_unpinned": "yes"})
    with pytest.raises(EnclaveError, match=f"^annotations.enclave.kbs.cacert: {tmp_path}/none: No such file"):
        plan_of({"enclave.kbs.url": "https://a.example", "enclave.kbs.cacert": str(tmp_path / "none")})


class Runtime:
    """An enclave runtime as provisioning sees it: its tee, reports, and (maybe) a measured broker."""

    def __init__(self, pin: BrokerPin | None = None, ca: bytes | None = None) -> None:
        self.pin, self.ca = pin, ca

    def probe(self) -> dict[str, str]:
        return {"tee": "software"}

    def local_report(self, target: bytes, report_data: bytes) -> bytes:
        raise AssertionError("no evidence may be produced in these tests")

    def trusted_broker(self) -> tuple[BrokerPin, bytes | None] | None:
        return (self.pin, self.ca) if self.pin is not None else None


PINNED = BrokerPin(("https://kbs-a.example:443", "https://kbs-b.example:8443"), None, (PIN,))


def test_the_host_chooses_among_the_pinned_replicas_only():
    plan = plan_of({"enclave.kbs.url": "https://kbs-b.example:8443,https://kbs-a.example"})
    assert plan is not None
    trust = decide_trust(Runtime(PINNED), plan, None)  # type: ignore[arg-type]
    assert (trust.urls, trust.pins, trust.pinned) == (["https://kbs-b.example:8443", "https://kbs-a.example:443"],
                                                      (PIN,), True)  # fmt: skip
    assert trust.context.verify_mode == ssl.CERT_NONE  # a key pin alone: whoever signed the certificate


def test_a_broker_the_manifest_does_not_pin_is_refused_before_attesting():
    plan = plan_of({"enclave.kbs.url": "https://kbs-a.example,https://evil.example:8443"})
    assert plan is not None
    with pytest.raises(EnclaveError) as refused:
        decide_trust(Runtime(PINNED), plan, None)  # type: ignore[arg-type]
    assert str(refused.value) == (
        "secret provisioning: annotations.enclave.kbs.url: https://evil.example:8443 is not a broker the enclave's "
        "manifest pins (kbs.urls: https://kbs-a.example:443, https://kbs-b.example:8443); refused before attesting"
    )


def test_the_pin_wins_over_the_opt_out_and_the_host_ca(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"not read for a pinned enclave")
    plan = plan_of({"enclave.kbs.url": "https://evil.example", "enclave.kbs.insecure_unpinned": "true",
                    "enclave.kbs.cacert": str(ca)})  # fmt: skip
    assert plan is not None
    with pytest.raises(EnclaveError, match=r"https://evil\.example:443 is not a broker the enclave's manifest pins"):
        decide_trust(Runtime(PINNED), plan, ssl.create_default_context())  # type: ignore[arg-type]


def test_unpinned_needs_the_opt_out():
    plan = plan_of({"enclave.kbs.url": "https://kbs.example"})
    assert plan is not None
    with pytest.raises(
        EnclaveError, match=r"^secret provisioning: the enclave's manifest pins no key broker \(\[kbs\]\)"
    ):
        decide_trust(Runtime(), plan, None)  # type: ignore[arg-type]
    opted = plan_of({"enclave.kbs.url": "https://kbs.example", "enclave.kbs.insecure_unpinned": "true"})
    assert opted is not None
    context = ssl.create_default_context()
    trust = decide_trust(Runtime(), opted, context)  # type: ignore[arg-type]
    assert (trust.urls, trust.context, trust.pins, trust.pinned) == (["https://kbs.example:443"], context, (), False)


def test_a_pinned_ca_that_is_not_pem_is_one_line():
    pin = BrokerPin(("https://kbs.example:443",), "/app/ca.pem", ())
    plan = plan_of({"enclave.kbs.url": "https://kbs.example"})
    assert plan is not None
    with pytest.raises(EnclaveError, match=r"^secret provisioning: the broker's CA bundle is unusable: "):
        decide_trust(Runtime(pin, b"not a certificate"), plan, None)  # type: ignore[arg-type]


def test_the_key_pin_is_checked_on_the_certificate():
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from inclavare.testing.pki import CertificateAuthority, spki_pin

    cert, _key = CertificateAuthority("t").issue("kbs.example")
    der = x509.load_pem_x509_certificate(cert).public_bytes(Encoding.DER)
    good = BrokerTrust([], ssl.create_default_context(), (base64.b64decode(spki_pin(cert)),), True)
    good.check_peer(der, "kbs.example")
    with pytest.raises(BrokerNotTrusted, match=r"^kbs\.example: not the pinned broker: its key is not in kbs\."):
        BrokerTrust([], ssl.create_default_context(), (PIN,), True).check_peer(der, "kbs.example")
    with pytest.raises(BrokerNotTrusted):
        BrokerTrust([], ssl.create_default_context(), (PIN,), True).check_peer(None, "kbs.example")


def test_no_channel_no_provisioning(tmp_path):
    plan = plan_of({"enclave.kbs.url": "https://kbs.example"})
    assert plan is not None
    with pytest.raises(EnclaveError, match="no channel to rune"):
        receive(None, -1, Runtime(PINNED), plan, (0, 0), None)  # type: ignore[arg-type]


def test_secrets_are_files_named_by_their_tag(tmp_path):
    import os

    write_secrets(str(tmp_path), {"default/key/db": b"secret"}, (os.getuid(), os.getgid()))
    assert (tmp_path / "db").read_bytes() == b"secret"
    assert (tmp_path / "db").stat().st_mode & 0o777 == 0o400
