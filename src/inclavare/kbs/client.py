"""The enclave side: attest to a KBS and fetch resources (synchronous, httpx).

The recipe, for an init process that needs its secrets before it starts
the workload::

    from inclavare.attestation.attesters import SoftwareAttester
    from inclavare.enclave.identity import HostKey, verify_signature
    from inclavare.kbs.client import attest_and_fetch

    attester = SoftwareAttester(verify_signature(manifest, sig, rootfs), HostKey.load_or_create())
    secrets = attest_and_fetch("https://kbs:8080", attester, ["default/key/db", "default/cert/tls"])

Any :class:`~inclavare.attestation.attesters.Attester` will do (an SGX,
TDX or SEV-SNP one from :func:`inclavare.attestation.attesters.create`):
the client declares its TEE by the kbs-types name (``snp`` for SEV-SNP).

It runs RCAR once (``/auth``, evidence over the challenge, ``/attest``),
then GETs each resource with the session cookie and decrypts the JWE with
the ephemeral TEE key, which never leaves this process. Robustness, so a
restarting or failing-over KBS does not fail a container start:

- ``url`` may list several replicas; a connection failure moves to the next;
- a handshake cut off in transit starts again from /auth (a nonce is single-use);
- a GET that fails in transit, or answers 502/503/504, is retried with the
  *same* ``Idempotency-Key``, so the KBS records one release however many
  attempts it takes (docs/kbs.md, "What released means");
- a 401 on a GET (session expired, replica without the session) triggers one
  fresh handshake; 403 and 404 are final.
Errors are :class:`KbsClientError` with the KBS's RFC 7807 type and detail.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import one_line
from .errors import KbsError
from .jwe import TeeKey
from .protocol.canonical import loads
from .protocol.handshake import ClientHandshake
from .protocol.messages import KBS_TEE
from .protocol.session import COOKIE_NAME

if TYPE_CHECKING:  # the attesters' registry loads every TEE's module; the client only calls one
    from ..attestation.attesters import Attester

RETRYABLE_STATUS = frozenset({502, 503, 504})


class KbsClientError(KbsError):
    """The KBS refused a request, or could not be reached; ``status`` 0 means no answer at all."""

    def __init__(self, status: int, problem: str, detail: str) -> None:
        self.status = status
        self.problem = problem
        self.detail = detail
        super().__init__(f"KBS answered {status} {problem}: {detail}" if status else f"KBS unreachable: {detail}")


class KbsClient:
    """One attested session with a KBS (or several replicas of one); not thread-safe."""

    def __init__(
        self,
        url: str | Sequence[str],
        attester: Attester,
        *,
        tee_key: TeeKey | None = None,
        verify: bool | str = True,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urls = [u.rstrip("/") for u in ([url] if isinstance(url, str) else url)]
        self.attester = attester
        self.tee_key = tee_key if tee_key is not None else TeeKey.generate()
        self.retries = retries
        self.backoff = backoff
        self.token: str | None = None
        self._cookie: str | None = None
        self._current = 0
        if transport is not None:  # its own connections and TLS (enclave/provision/tunnel.py)
            self._http = httpx.Client(transport=transport, timeout=timeout)
            return
        # Building a TLS context costs tens of ms (CA bundle): only when some URL is HTTPS.
        tls = any(u.startswith("https:") for u in self.urls)
        self._http = httpx.Client(verify=tls_verify(verify) if tls else False, timeout=timeout)

    def __enter__(self) -> KbsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def attest(self) -> str:
        """Run RCAR; returns the attestation token (the session cookie is kept for GETs).

        A nonce is good for one attempt only, so a handshake interrupted in
        transit (a replica dying mid-/attest) restarts from /auth, on the next
        replica; refusals (4xx) are final.
        """
        last: KbsClientError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * attempt)
            try:
                return self._handshake()
            except KbsClientError as exc:
                if exc.status and exc.status not in RETRYABLE_STATUS:
                    raise
                last = exc
        assert last is not None
        raise last

    def _handshake(self) -> str:
        hs = ClientHandshake(KBS_TEE[self.attester.tee], self.tee_key.public_jwk())
        self._cookie = None
        challenge = self._request("POST", "/kbs/v0/auth", json=hs.request())
        cookie = challenge.cookies.get(COOKIE_NAME)
        if cookie is None:
            raise KbsClientError(challenge.status_code, "NoCookie", "the KBS set no kbs-session-id cookie")
        self._cookie = cookie
        report_data = hs.challenge(_json(challenge))
        evidence = self.attester.collect_evidence(report_data).data
        self.token = hs.token(_json(self._request("POST", "/kbs/v0/attest", json=hs.attestation(evidence))))
        return self.token

    def get_resource(self, path: str, *, request_key: str | None = None) -> bytes:
        """The plaintext of ``repository/type/tag``; attests first if needed."""
        if self._cookie is None:
            self.attest()
        key = request_key or secrets.token_hex(16)
        try:
            response = self._get(path, key)
        except KbsClientError as exc:
            if exc.status != 401:
                raise
            self.attest()  # expired session, or a replica that lost it: one fresh handshake
            response = self._get(path, key)
        return self.tee_key.decrypt(_json(response))

    def _get(self, path: str, key: str) -> httpx.Response:
        return self._request("GET", f"/kbs/v0/resource/{path.strip('/')}", headers={"Idempotency-Key": key}, retry=True)

    def _request(self, method: str, route: str, *, retry: bool = False, **kw: Any) -> httpx.Response:
        attempts = self.retries + 1 if retry else 1
        extra: dict[str, str] = kw.pop("headers", {})
        last: KbsClientError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * attempt)
            url = self.urls[self._current % len(self.urls)] + route
            headers = {**extra, **({"Cookie": f"{COOKIE_NAME}={self._cookie}"} if self._cookie else {})}
            try:
                response = self._http.request(method, url, headers=headers, **kw)
            except httpx.TransportError as exc:
                self._current += 1  # the next replica, if there is one
                why = f" ({one_line(str(exc))})" if str(exc) else ""
                last = KbsClientError(0, "Unreachable", f"{type(exc).__name__} talking to {url}{why}")
                continue
            finally:
                self._http.cookies.clear()  # the session cookie is ours to send, to whichever replica
            if response.status_code in RETRYABLE_STATUS:
                self._current += 1
                if attempt + 1 < attempts:
                    continue
            if response.status_code >= 400:
                raise problem_of(response)
            return response
        assert last is not None
        raise last


def tls_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """``True`` (system CAs), ``False``, or a CA bundle path made into a context (httpx wants a context)."""
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise KbsClientError(0, "BadCaBundle", f"{verify}: {exc}") from None
    return verify


def attest_and_fetch(
    url: str | Sequence[str],
    attester: Attester,
    resources: Sequence[str],
    *,
    tee_key: TeeKey | None = None,
    verify: bool | str = True,
    timeout: float = 10.0,
    retries: int = 3,
) -> dict[str, bytes]:
    """Attest once and fetch every resource: ``{"repo/type/tag": plaintext}``."""
    with KbsClient(url, attester, tee_key=tee_key, verify=verify, timeout=timeout, retries=retries) as client:
        client.attest()
        return {path: client.get_resource(path) for path in resources}


def document(response: httpx.Response, shape: type[dict[str, Any]] | type[list[Any]] = dict) -> Any:
    """A response body that must be JSON of ``shape``; KbsClientError otherwise (a KBS is input too)."""
    try:
        doc = loads(response.content)  # refuses NaN and nesting deep enough to exhaust the stack, as the server does
    except (ValueError, UnicodeDecodeError):
        raise KbsClientError(response.status_code, "NotJson", "the KBS answered something that is not JSON") from None
    if not isinstance(doc, shape):
        what = "an object" if shape is dict else "an array"
        raise KbsClientError(response.status_code, "NotJson", f"the KBS answered JSON that is not {what}")
    return doc


def _json(response: httpx.Response) -> Mapping[str, Any]:
    return document(response)


def problem_of(response: httpx.Response) -> KbsClientError:
    try:
        doc = loads(response.content)
    except (ValueError, UnicodeDecodeError):
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    problem = str(doc.get("type", "")).rsplit("/", 1)[-1] or "HttpError"
    return KbsClientError(response.status_code, problem, str(doc.get("detail", response.reason_phrase))[:300])
