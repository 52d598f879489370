"""A KBS's answers are input too: the client and the admin client turn garbage into one-line KbsErrors.

A local HTTP server answers every request with one fixed body; before,
``response.json()`` let a RecursionError or a ValueError escape, and a
missing member a KeyError (tracebacks from ``inclavare kbs-client``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.kbs.admin_client import KbsAdmin
from inclavare.kbs.client import KbsClient
from inclavare.kbs.errors import KbsError

ANSWERS = {
    "not json": b"<html>",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "nan": b'{"path": NaN, "deleted": NaN, "nonce": NaN}',
    "wrong members": b'{"deleted": "many", "expired": true}',
    "wrong shape": b"[1, 2]",
}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = self.server.body  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("set-cookie", "kbs-session-id=abc; Path=/kbs/v0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kbs(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


class _Provider:
    tee = "software"

    def evidence(self, report_data: bytes) -> bytes:
        return b"evidence"


def message_of(call: Callable[[], object]) -> str | None:
    """The KbsError ``call`` raises (KbsClientError, HandshakeError), None if it returns; anything else escapes."""
    try:
        call()
    except KbsError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("answer", ANSWERS)
def test_garbage_answers_are_client_errors(kbs: ThreadingHTTPServer, answer: str) -> None:
    kbs.body = ANSWERS[answer]  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{kbs.server_address[1]}"
    with KbsAdmin(url, ed25519.Ed25519PrivateKey.generate()) as admin:
        errors = [
            message_of(lambda: admin.delete_resource("default/key/x")),
            message_of(admin.list_resources),
            message_of(lambda: admin.expire_reference_values("software.measurement")),
            message_of(lambda: admin.delete_reference_values("software.measurement")),
        ]
    assert all(e is None or "\n" not in e for e in errors)
    assert any(errors)  # none of these answers is what any of the calls expects from all routes
    with KbsClient(url, _Provider(), retries=0) as client:  # type: ignore[arg-type]
        assert message_of(client.attest)
