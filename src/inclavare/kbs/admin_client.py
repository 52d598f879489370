"""The admin API from Python: resources, policies, reference values, collateral, audit (what kbs-client uses).

Every call carries a fresh Ed25519-signed JWT (:func:`inclavare.kbs.admin.admin_token`)
valid for ``token_lifetime`` seconds. ``add_from_enclave`` computes the
reference values of a signed software enclave with
:func:`inclavare.enclave.identity.verify_signature` — signature, manifest
and every trusted file re-checked — and registers them.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..attestation.hazmat.guard import foreign
from ..enclave.identity import verify_signature
from .admin import admin_token
from .client import KbsClientError, document, problem_of, tls_verify
from .errors import ConfigError


def load_admin_key(path: str) -> ed25519.Ed25519PrivateKey:
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(1 << 16), password=None)
    except OSError as exc:
        raise ConfigError("--admin-key", f"{path}: {exc.strerror}", "kbs-client") from None
    except foreign():  # ValueError, and UnsupportedAlgorithm for a curve OpenSSL lacks
        raise ConfigError("--admin-key", f"{path}: not an unencrypted PEM private key", "kbs-client") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError("--admin-key", f"{path}: admin keys are Ed25519", "kbs-client")
    return key


class KbsAdmin:
    def __init__(
        self,
        url: str,
        key: ed25519.Ed25519PrivateKey,
        *,
        verify: bool | str = True,
        timeout: float = 10.0,
        token_lifetime: float = 120.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.token_lifetime = token_lifetime
        tls = self.url.startswith("https:")
        self._http = httpx.Client(verify=tls_verify(verify) if tls else False, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KbsAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, route: str, **kw: Any) -> Any:
        """The JSON a route answers: an object, or with ``shape=list`` an array."""
        shape = kw.pop("shape", dict)
        headers = {"Authorization": "Bearer " + admin_token(self.key, time.time(), self.token_lifetime)}
        try:
            response = self._http.request(method, self.url + "/kbs/v0" + route, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise KbsClientError(0, "Unreachable", f"{type(exc).__name__} talking to {self.url}") from None
        if response.status_code >= 400:
            raise problem_of(response)
        return document(response, shape)

    def _field(self, method: str, route: str, key: str, kind: type = object, **kw: Any) -> Any:
        """Member ``key`` of the object a route answers, which must be a ``kind``."""
        value = self._call(method, route, **kw).get(key)
        if value is None or not isinstance(value, kind):
            raise KbsClientError(200, "UnexpectedAnswer", f"{method} {route}: the KBS answered no usable {key!r}")
        return value

    # -- resources ---------------------------------------------------------------
    def set_resource(self, path: str, value: bytes) -> str:
        return str(self._field("POST", f"/resource/{path.strip('/')}", "path", content=value))

    def delete_resource(self, path: str) -> bool:
        return bool(self._field("DELETE", f"/resource/{path.strip('/')}", "deleted"))

    def list_resources(self) -> list[str]:
        return list(self._call("GET", "/resources", shape=list))

    # -- policies ------------------------------------------------------------------
    def set_resource_policy(self, *, policy: str | None = None, builtin: str | None = None, scope: str = "*") -> str:
        return str(self._field("POST", "/resource-policy", "scope", json={**_policy(policy, builtin), "scope": scope}))

    def resource_policies(self) -> dict[str, str]:
        return dict(self._call("GET", "/resource-policy"))

    def delete_resource_policy(self, scope: str) -> bool:
        return bool(self._field("DELETE", "/resource-policy", "deleted", params={"scope": scope}))

    def set_attestation_policy(
        self, *, policy: str | None = None, builtin: str | None = None, policy_id: str = "default"
    ) -> str:
        doc = {**_policy(policy, builtin), "type": "rego", "policy_id": policy_id}
        return str(self._field("POST", "/attestation-policy", "policy_id", json=doc))

    def attestation_policies(self) -> dict[str, str]:
        return dict(self._call("GET", "/attestation-policy"))

    # -- reference values --------------------------------------------------------------
    def add_reference_values(self, name: str, values: list[str], expires: float | None = None) -> Mapping[str, Any]:
        return dict(self._call("POST", "/reference-value", json={"name": name, "values": values, "expires": expires}))

    def reference_values(self, name: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/reference-value" + (f"/{name}" if name else ""), shape=list))

    def expire_reference_values(self, name: str, value: str | None = None, at: float | None = None) -> int:
        body = {k: v for k, v in (("value", value), ("at", at)) if v is not None}
        return int(self._field("POST", f"/reference-value/{name}/expire", "expired", int, json=body))

    def delete_reference_values(self, name: str, value: str | None = None) -> int:
        params = {"value": value} if value is not None else {}
        return int(self._field("DELETE", f"/reference-value/{name}", "deleted", int, params=params))

    def add_from_enclave(
        self, manifest: str, sig: str, rootfs: str, *, expires: float | None = None, by_signer: bool = False
    ) -> dict[str, list[str]]:
        """Register what a signed software enclave measures to (by measurement, or by signer + product + SVN)."""
        identity = verify_signature(manifest, sig, rootfs)
        if by_signer:
            values = {
                "software.signer": [identity.signer.hex()],
                "software.product_id": [str(identity.isv_prod_id)],
                "software.min_svn": [str(identity.isv_svn)],
            }
        else:
            values = {"software.measurement": [identity.measurement.hex()]}
        for name, vals in values.items():
            self.add_reference_values(name, vals, expires)
        return values

    # -- collateral (host keys, PCS documents, CRLs, certificates) ---------------------
    def add_collateral(self, data: bytes, kind: str | None = None) -> dict[str, Any]:
        """Store one collateral file (``kind="host-key"``: refused unless it is a host key)."""
        params = {"kind": kind} if kind else {}
        return dict(self._call("POST", "/collateral", content=data, params=params))

    def collateral(self, kind: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/collateral", params={"kind": kind} if kind else {}, shape=list))

    def delete_collateral(self, item_id: str) -> bool:
        return bool(self._field("DELETE", f"/collateral/{item_id}", "deleted"))

    # -- audit ------------------------------------------------------------------------
    def audit(self, since: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._call("GET", "/audit", params={"since": since, "limit": limit}, shape=list))


def _policy(policy: str | None, builtin: str | None) -> dict[str, str]:
    if (policy is None) == (builtin is None):
        raise ValueError("give exactly one of policy (Rego text) and builtin (a name)")
    if builtin is not None:
        return {"builtin": builtin}
    assert policy is not None
    return {"policy": base64.b64encode(policy.encode()).decode()}
