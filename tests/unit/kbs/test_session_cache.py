"""Attested sessions remembered per process (service/resources.py ``ResourceService._session``).

What must hold: a second GET on a session does not read its row again;
only an ATTESTED session is remembered (one that was still AUTHED on a GET
attests and fetches afterwards); expiry still applies to a remembered
session; and a row that is gone releases nothing, remembered or not.
"""

from __future__ import annotations

import json

import pytest

from inclavare.kbs.errors import TokenNotFound

from .helpers import Broker, make_broker


@pytest.fixture
def broker(tmp_path):
    b = make_broker(str(tmp_path))
    b.setup_release()
    yield b
    b.service.close()


def count_reads(broker: Broker, monkeypatch) -> list[str]:
    storage = broker.service.deps.storage
    reads: list[str] = []
    real = storage.get_session

    def counted(key: str):
        reads.append(key)
        return real(key)

    monkeypatch.setattr(storage, "get_session", counted)
    return reads


def test_a_second_get_does_not_read_the_session_again(broker, monkeypatch):
    cookie, _, _ = broker.attest()
    reads = count_reads(broker, monkeypatch)
    broker.get(cookie=cookie)
    broker.get(cookie=cookie)
    assert len(reads) == 1


def test_a_session_not_yet_attested_is_not_remembered(broker, monkeypatch):
    cookie, hs, report_data = broker.auth()
    with pytest.raises(TokenNotFound, match="authed, not attested"):
        broker.get(cookie=cookie)
    body = json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode()
    broker.service.rcar.attest(body, cookie, "test")
    assert broker.get(cookie=cookie)["protected"]


def test_a_remembered_session_still_expires(broker):
    cookie, _, _ = broker.attest()
    broker.get(cookie=cookie)
    broker.clock.now += broker.service.deps.config.attestation.session_timeout
    with pytest.raises(TokenNotFound, match="expired"):
        broker.get(cookie=cookie)


def test_a_remembered_session_whose_row_is_gone_releases_nothing(broker):
    cookie, _, _ = broker.attest()
    broker.get(cookie=cookie)
    storage = broker.service.deps.storage
    with storage.transaction() as c:
        c.execute("DELETE FROM kbs_sessions")
    with pytest.raises(TokenNotFound):  # now from the release transaction: the row is checked there too
        broker.get(cookie=cookie)
