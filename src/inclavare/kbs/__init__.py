"""The key broker service (KBS) and its client: attestation-gated secrets over trustee's RCAR protocol.

An enclave proves what it is (evidence verified by :mod:`inclavare.attestation`,
appraised by a Rego policy against reference values) and gets resources
encrypted to a key only it holds. Layout:

- :mod:`.protocol`     sans-IO core: messages, version, session FSM, binding, EAR claims, client handshake
- :mod:`.service`      the broker without HTTP: RCAR, releases, administration
- :mod:`.server`       starlette routes + uvicorn; errors as RFC 7807
- :mod:`.policy`       Rego (regopy): attestation appraisal, path-scoped resource policies
- :mod:`.storage`      SQLite (default) and PostgreSQL (replicas); what "released" means
- :mod:`.atrest`       resources sealed under a key-encryption key; KEK sources, rotation, migration
- :mod:`.jwe`, :mod:`.token`, :mod:`.admin`   JWE to the TEE key; attestation and admin JWTs
- :mod:`.config`, :mod:`.metrics`, :mod:`.ratelimit`, :mod:`.audit`   operations
- :mod:`.client`, :mod:`.admin_client`   the enclave side (any ``attestation.attesters.Attester``) and the admin side

The test kit (a KBS process, a private PostgreSQL, a signed test enclave) is
:mod:`inclavare.testing.kbs`.

The enclave-side recipe is :func:`inclavare.kbs.client.attest_and_fetch`.
Design and operations: docs/kbs.md. Everything here needs the ``kbs`` extra.
"""

from __future__ import annotations
