"""X-Forwarded-For is the broker's to trust or not (``rate_limit.trust_forwarded_for``), not uvicorn's.

uvicorn's proxy-headers middleware, on by default, replaces the peer address
with X-Forwarded-For on every connection from 127.0.0.1: a client on the
broker's own host could then choose the address that the rate limiter keys
on and the audit log records. The broker turns it off (server/serve.py).
"""

from __future__ import annotations

import json

import httpx
import pytest

from inclavare.kbs.jwe import TeeKey
from inclavare.kbs.protocol.handshake import ClientHandshake
from inclavare.testing.kbs import KbsProcess, World

SPOOFED = "203.0.113.7"  # TEST-NET-3 (RFC 5737)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-xff")))


def refused_attempt_source(world: World, name: str, extra: str) -> str:
    """The ``source`` the audit log records for a refused /attest sent with a forged X-Forwarded-For."""
    with KbsProcess(world.config(name, extra=extra)) as kbs, httpx.Client(base_url=kbs.url) as http:
        hs = ClientHandshake("software", TeeKey.generate().public_jwk())
        assert http.post("/kbs/v0/auth", json=hs.request()).status_code == 200
        forged = {"X-Forwarded-For": SPOOFED, "Content-Type": "application/json"}
        answer = http.post("/kbs/v0/attest", content=b'{"not": "an attestation"}', headers=forged)
        assert answer.status_code == 401
    with open(f"{world.root}/{name}-audit.jsonl") as f:
        attempts = [doc for doc in map(json.loads, f) if doc["event"] == "attest"]
    assert len(attempts) == 1
    return str(attempts[0]["source"])


def test_a_local_client_cannot_choose_its_address_with_x_forwarded_for(world):
    assert refused_attempt_source(world, "untrusted", "") == "127.0.0.1"


def test_x_forwarded_for_is_honoured_where_the_config_trusts_it(world):
    trusted = "\n[rate_limit]\ntrust_forwarded_for = true\n"
    assert refused_attempt_source(world, "trusted", trusted) == SPOOFED
