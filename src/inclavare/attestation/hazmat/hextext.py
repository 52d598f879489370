"""Hex text from people and tools: plain, as ``bytes.fromhex`` reads it, or with a ``0x`` prefix.

dcap-qvl prints and reads quotes and report data as ``0x``-prefixed hex, and
so do Automata's DCAP attestation tools (they are Ethereum tooling, where
``0x`` marks a byte string). A value copied from their output must mean
the same here as the bare digits, so every place that reads hex from input
(evidence files, policies, reference values, collateral bundles) goes
through :func:`from_hex`. Formats that are signed byte for byte by a vendor
(Intel PCS TCB info and QE identity) keep their own strict reader.
"""

from __future__ import annotations


def strip_0x(text: str) -> str:
    """``text`` without surrounding whitespace and one leading ``0x``/``0X``."""
    text = text.strip()
    return text[2:] if text[:2] in ("0x", "0X") else text


def from_hex(text: str) -> bytes:
    """Hex digits (whitespace between bytes allowed), optionally after one ``0x``; ValueError otherwise."""
    return bytes.fromhex(strip_0x(text))


def canonical_hex(text: str) -> str:
    """The lower-case, unprefixed form of a hex string (``0xAB cd`` -> ``abcd``); ValueError if not hex."""
    return from_hex(text).hex()
