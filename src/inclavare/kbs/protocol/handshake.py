"""The KBC side of RCAR, without I/O: what to send, and what the evidence must bind.

    hs = ClientHandshake("software", tee_pubkey=key.public_jwk())
    body = hs.request()                          # POST /kbs/v0/auth
    report_data = hs.challenge(challenge_json)   # 64 bytes for the attester
    body = hs.attestation(evidence)              # POST /kbs/v0/attest
    token = hs.token(response_json)

The same :mod:`.messages` and :mod:`.binding` the server checks with build
every message here, so the two sides cannot disagree about the binding.
Ref: guest-components kbs_protocol ``rcar_client.rs`` (``build_request``,
``get_hash_algorithm``, ``get_composite_evidence``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidRequest
from .binding import HASH_ALGORITHMS, report_data_for, runtime_data_digest
from .messages import PROTOCOL_VERSION, Attestation, Challenge, Request, encode_evidence


class HandshakeError(InvalidRequest):
    """The KBS answered something this client cannot use (a protocol error, not a network one)."""


@dataclass
class ClientHandshake:
    tee: str
    tee_pubkey: Mapping[str, object]
    hash_algorithms: Sequence[str] = ("sha256", "sha384", "sha512")
    _challenge: Challenge | None = None
    _algorithm: str | None = None

    def request(self) -> dict[str, object]:
        """The Request body, offering our hash algorithms."""
        extra = {"supported-hash-algorithms": list(self.hash_algorithms)}
        return Request(PROTOCOL_VERSION, self.tee, extra).to_json()

    def challenge(self, doc: object) -> bytes:
        """Take the Challenge; return the 64 bytes of report data the evidence must carry."""
        if not isinstance(doc, dict):
            raise HandshakeError("challenge: must be a JSON object")
        challenge = Challenge.parse(doc)
        algorithm = challenge.selected_hash_algorithm or "sha384"  # rcar_client.rs DEFAULT_HASH_ALGORITHM
        if algorithm not in HASH_ALGORITHMS or algorithm not in self.hash_algorithms:
            raise HandshakeError(f"challenge: the KBS selected {algorithm!r}, which this client did not offer")
        self._challenge, self._algorithm = challenge, algorithm
        return report_data_for(runtime_data_digest(self._runtime_data().runtime_data(), algorithm))

    def attestation(self, evidence: bytes) -> dict[str, object]:
        """The Attestation body carrying ``evidence`` (produced over :meth:`challenge`'s report data)."""
        return Attestation(
            nonce=self._need_challenge().nonce,
            tee_pubkey=self.tee_pubkey,
            primary_evidence=encode_evidence(evidence),
        ).to_json()

    @staticmethod
    def token(doc: object) -> str:
        """The attestation token from the Response to /attest."""
        token = doc.get("token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or token.count(".") != 2:
            raise HandshakeError("attest response: no token")
        return token

    @property
    def hash_algorithm(self) -> str | None:
        return self._algorithm

    def _need_challenge(self) -> Challenge:
        if self._challenge is None:
            raise HandshakeError("handshake: no challenge yet (call challenge() first)")
        return self._challenge

    def _runtime_data(self) -> Attestation:
        return Attestation(nonce=self._need_challenge().nonce, tee_pubkey=self.tee_pubkey, primary_evidence=None)
