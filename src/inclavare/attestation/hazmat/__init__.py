"""Hazardous materials: raw evidence structures, DER/CBOR pieces and certificate chains.

.. warning::
   Nothing here verifies evidence end to end. A parsed quote is *not* a
   verified quote; a chain that links is not a chain that is trusted for a
   purpose. Use :func:`inclavare.attestation.verify` (the recipe) unless you
   are writing a verifier. Every function raises only
   :class:`~inclavare.attestation.errors.EvidenceFormatError`,
   :class:`~inclavare.attestation.errors.CollateralError` or
   :class:`~inclavare.attestation.errors.VerificationFailed`.
"""

from __future__ import annotations
