"""The enclave side of secret provisioning: what it accepts from the host relay."""

from __future__ import annotations

import pytest

from inclavare.enclave.config import read_settings
from inclavare.enclave.provision import CHALLENGE, RESOURCES, START, KbsPlan, receive, relay
from inclavare.errors import EnclaveError
from inclavare.kbs import jwe


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://kbs.example:8080", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("http://[::1]:8080", True),
        ("http://kbs.example:8080", False),
        ("http://10.0.0.1", False),
        ("ftp://kbs.example", False),
        ("https://a.example,http://b.example", False),  # every replica
    ],
)
def test_kbs_url_must_be_https_unless_loopback(url, ok):
    settings = read_settings({"enclave.kbs.url": url, "enclave.kbs.resources": "default/key/db"}, [])
    if ok:
        assert KbsPlan.from_settings(settings) is not None
    else:
        with pytest.raises(EnclaveError, match="must be https"):
            KbsPlan.from_settings(settings)


class Relay:
    """The host side as the enclave sees it: messages on a channel."""

    def __init__(self, resources: dict[str, object]) -> None:
        self.resources = resources
        self.tee_pubkey: dict[str, object] = {}

    def send(self, kind: str, payload: dict[str, object]) -> None:
        if "tee_pubkey" in payload:
            self.tee_pubkey = payload["tee_pubkey"]  # type: ignore[assignment]

    def expect(self, kind: str) -> dict[str, object]:
        if kind == CHALLENGE:
            return {"challenge": {"nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "extra-params": {}}}
        assert kind == RESOURCES
        sealed = {path: jwe.encrypt(self.tee_pubkey, value) for path, value in self.resources.items()}  # type: ignore[arg-type]
        return {"resources": sealed}


class Runtime:
    def probe(self) -> dict[str, str]:
        return {"tee": "software"}

    def local_report(self, target: bytes, report_data: bytes) -> bytes:
        return b"evidence"


@pytest.mark.parametrize(
    "answered",
    [
        {"default/key/db": b"x", "default/key/extra": b"y"},  # more than asked
        {},  # fewer
        {"../../../etc/cron.d/x": b"x"},  # other paths: the file name comes from the path
    ],
)
def test_only_the_resources_asked_for_are_written(tmp_path, answered):
    plan = KbsPlan(["http://127.0.0.1:1"], ["default/key/db"], str(tmp_path), None)
    with pytest.raises(EnclaveError, match="other resources than the ones asked for"):
        receive(Relay(answered), Runtime(), plan, (0, 0))
    assert list(tmp_path.iterdir()) == []


def test_the_resources_asked_for_are_written(tmp_path):
    import os

    plan = KbsPlan(["http://127.0.0.1:1"], ["default/key/db"], str(tmp_path), None)
    receive(Relay({"default/key/db": b"secret"}), Runtime(), plan, (os.getuid(), os.getgid()))
    assert (tmp_path / "db").read_bytes() == b"secret"


class Scripted:
    """A channel whose other side sends fixed messages (a container's init is input to rune)."""

    def __init__(self, **messages: object) -> None:
        self.messages = messages
        self.sent: list[str] = []

    def send(self, kind: str, payload: object = None) -> None:
        self.sent.append(kind)

    def expect(self, kind: str) -> object:
        return self.messages[kind]


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (["tee", "software"], "kbs-start message: tee must be a string"),
        ({"tee": 7, "tee_pubkey": {}}, "kbs-start message: tee must be a string"),
        ({"tee": "software", "tee_pubkey": "key"}, "kbs-start message: tee_pubkey must be an object"),
    ],
)
def test_the_relay_refuses_a_malformed_start_in_one_line(start, message):
    """Before, rune create indexed the message as it came: a list or a number was a TypeError traceback."""
    plan = KbsPlan(["http://127.0.0.1:1"], ["default/key/db"], "/run/secrets", None)
    with pytest.raises(EnclaveError, match=f"^secret provisioning: {message}$"):
        relay(Scripted(**{START: start}), plan)


@pytest.mark.parametrize(
    ("messages", "refusal"),
    [
        ({CHALLENGE: "nonce"}, "kbs-challenge message: challenge must be an object"),
        ({CHALLENGE: Relay({}).expect(CHALLENGE), RESOURCES: {"resources": []}}, "resources must be an object"),
    ],
)
def test_the_enclave_side_refuses_malformed_relay_messages(tmp_path, messages, refusal):
    plan = KbsPlan(["http://127.0.0.1:1"], ["default/key/db"], str(tmp_path), None)
    with pytest.raises(EnclaveError, match=refusal):
        receive(Scripted(**messages), Runtime(), plan, (0, 0))
    with pytest.raises(EnclaveError, match="no channel to rune"):
        receive(None, Runtime(), plan, (0, 0))
    assert list(tmp_path.iterdir()) == []
