"""Shared helpers for the KBS unit tests: a broker on SQLite with an injected clock, and RCAR via the service."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.kbs.admin import Admin
from inclavare.kbs.config import parse_config
from inclavare.kbs.jwe import TeeKey
from inclavare.kbs.protocol.handshake import ClientHandshake
from inclavare.kbs.service import KbsService
from inclavare.testing.kbs import World

OPS = Admin("ops", ("*",))
SECRET = b"db-password: hunter2-\x00\xff-do-not-log"


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Broker:
    service: KbsService
    clock: Clock
    world: World
    attester: SoftwareAttester = field(init=False)

    def __post_init__(self) -> None:
        self.attester = SoftwareAttester(self.world.identity, self.world.host_key)

    def admin(self, method: str, *args: object) -> object:
        return getattr(self.service.admin, method)(OPS, *args)

    def setup_release(
        self, path: str = "default/key/db", value: bytes = SECRET, policy: str = "approved-executables"
    ) -> None:
        """A resource, a software-friendly resource policy on default/*, and the enclave's measurement."""
        a = self.service.admin
        a.set_resource(OPS, tuple(path.split("/")), value, "test")
        a.set_resource_policy(OPS, json.dumps({"builtin": policy, "scope": "default/*"}).encode(), "test")
        body = {"name": "software.measurement", "values": [self.world.identity.measurement.hex()]}
        a.add_reference_values(OPS, json.dumps(body).encode(), "test")

    def auth(self, tee: str = "software", key: TeeKey | None = None) -> tuple[str, ClientHandshake, bytes]:
        """(cookie, handshake, report data) after /auth."""
        hs = ClientHandshake(tee, (key or TeeKey.generate()).public_jwk())
        cookie, _, challenge = self.service.rcar.auth(json.dumps(hs.request()).encode())
        return cookie, hs, hs.challenge(challenge.to_json())

    def attest(self, key: TeeKey | None = None, tee: str = "software") -> tuple[str, str, TeeKey]:
        """(cookie, token, key) after a full, successful handshake."""
        key = key or TeeKey.generate()
        cookie, hs, report_data = self.auth(tee, key)
        body = json.dumps(hs.attestation(self.attester.collect_evidence(report_data).data)).encode()
        token, _ = self.service.rcar.attest(body, cookie, "test")
        return cookie, token, key

    def get(
        self,
        path: str = "default/key/db",
        *,
        cookie: str | None = None,
        token: str | None = None,
        key: str | None = None,
    ) -> dict[str, str]:
        auth = f"Bearer {token}" if token else None
        return self.service.resources.get(
            *path.split("/"), cookie=cookie, authorization=auth, request_key=key, source="test"
        )


def make_broker(root: str, extra: dict[str, object] | None = None, world: World | None = None) -> Broker:
    world = world or World.create(os.path.join(root, "world"))
    clock = Clock()
    doc: dict[str, object] = {
        "storage": {"path": os.path.join(root, "kbs.db"), "kek": {"file": world.kek}},
        "attestation": {"collateral": [f"{world.root}/host-key.pub.pem"], "policy": "allow-software"},
        "token": {"signing_key": f"{world.root}/token.pem"},
        "audit": {"path": os.path.join(root, "audit.jsonl"), "replica": "unit"},
    }
    for section, values in (extra or {}).items():
        doc[section] = {**doc.get(section, {}), **values}  # type: ignore[dict-item]
    return Broker(KbsService.from_config(parse_config(doc), clock=clock), clock, world)
