"""Attested TLS compatible with rats-tls: evidence in the certificate, appraisal after the handshake.

Recipe (server proves itself; the client appraises it)::

    from inclavare.attestation.attesters import AttesterOptions, create
    from inclavare.attestation.ratls import VerifyPolicy, accept, client_context, connect, server_context

    server = server_context(create("software", AttesterOptions(identity=ident, host_key=key)))
    conn = accept(listener, server)                 # handshake; conn.peer is None (not mutual)

    policy = VerifyPolicy.reference_values(measurements=[mrenclave], allow_software=True, collateral=store)
    conn = connect(("127.0.0.1", 1234), client_context(policy))
    conn.peer.claims.measurement                    # verified before any application data

Mutual mode: ``server_context(attester, verify_policy=...)`` and
``client_context(policy, attester=...)``; both sides then appraise each
other. Development without attestation, like rats-tls's nullattester and
nullverifier, only when named: ``server_context(NullAttester())``,
``client_context(NullVerifier())`` (:mod:`.null`; every use is logged as
UNATTESTED). Modules: :mod:`.certificate` (issue certificates as rats-tls does),
:mod:`.endorsements` (2.23.133.5.4.2), :mod:`.peer` (:class:`VerifyPolicy`),
:mod:`.context` (the TLS side). Parsing and verifying certificates (TCG
DICE, legacy rats-tls OIDs, Gramine) is the existing
:mod:`inclavare.attestation.verifiers.ratls`. Design and formats: docs/ratls.md.
"""

from __future__ import annotations

from .certificate import (
    TAGS,
    RatlsCertificate,
    build_certificate,
    claims_buffer,
    generate_key,
    issue,
    pubkey_hash_value,
    report_data_for,
    spki_of,
    tagged_evidence,
)
from .context import (
    AttestedSocket,
    PeerRefused,
    RatlsContext,
    RatlsError,
    accept,
    client_context,
    connect,
    server_context,
)
from .endorsements import OID_ENDORSEMENTS, Endorsements
from .null import UNATTESTED, NullAttester, NullVerifier
from .peer import VerifyPolicy

__all__ = [
    "OID_ENDORSEMENTS",
    "TAGS",
    "UNATTESTED",
    "AttestedSocket",
    "Endorsements",
    "NullAttester",
    "NullVerifier",
    "PeerRefused",
    "RatlsCertificate",
    "RatlsContext",
    "RatlsError",
    "VerifyPolicy",
    "accept",
    "build_certificate",
    "claims_buffer",
    "client_context",
    "connect",
    "generate_key",
    "issue",
    "pubkey_hash_value",
    "report_data_for",
    "server_context",
    "spki_of",
    "tagged_evidence",
]
