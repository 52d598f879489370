"""Telling a setting's name from a near miss, without loading the settings table.

enclave/config.py refuses names one or two typos from ``enclave``; the
carrier (inclavare.carrier.registry) refuses those near ``RUNE_CARRIER``.
containerd-shim-rune-v2 asks :func:`mentions_carrier` on every Create to
decide whether to load the carrier library at all (~0.1 s of imports on the
pod's path), so this module imports nothing.
"""

from __future__ import annotations

CARRIER_VARIABLE = "RUNE_CARRIER"  # the original shim-rune's variable
CARRIER_ANNOTATION = "enclave.carrier"


def near(word: str, target: str) -> bool:
    """Edit distance at most 2 (typos of the prefix: encalve, enclav, nclave)."""
    if not 5 <= len(word) <= len(target) + 2:
        return False
    previous = list(range(len(target) + 1))
    for i, a in enumerate(word, 1):
        row = [i]
        for j, b in enumerate(target, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = row
    return previous[-1] <= 2


def looks_like_carrier(name: str) -> bool:
    """RUNE_CARRIER in any case, with any separator, or one or two typos away (rune.carrier, RUNE_CARIER).

    The carrier refuses such names (inclavare.carrier.registry); they are not
    under ``enclave``/``ENCLAVE_``, so rune does not see them as settings."""
    squashed = "".join(c for c in name.lower() if c.isalnum())
    return squashed == "runecarrier" or near(squashed, "runecarrier")


def mentions_carrier(env: list[str], annotations: dict[str, str]) -> bool:
    """Whether a container names a carrier, or something the carrier would refuse as a misspelt one.

    For any other container the carrier would do nothing, and every enclave
    setting is still rune's to check."""
    names = [entry.partition("=")[0] for entry in env] + list(annotations)
    return CARRIER_ANNOTATION in annotations or any(looks_like_carrier(name) for name in names)
