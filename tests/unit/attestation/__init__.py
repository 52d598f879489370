"""Tests of inclavare.attestation (genuine vectors in tests/vectors)."""

from __future__ import annotations
