"""Unit tests of the key broker (inclavare.kbs): protocol core, crypto, policies, storage, service."""

from __future__ import annotations
