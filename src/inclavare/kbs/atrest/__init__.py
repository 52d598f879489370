"""Resources encrypted at rest: envelope encryption under a key-encryption key the database never sees.

- :mod:`.kek`          where KEKs come from (file, environment, a KMS-style command); the keyring
- :mod:`.envelope`     seal / unseal / re-wrap one resource; AAD binding path and version; rollback marks
- :mod:`.maintenance`  ``inclavare kbs migrate`` (plaintext -> sealed) and ``rotate-kek`` (re-wrap), in batches

The SQL side (tables, the database's active KEK, the checks a broker makes
before serving) is :mod:`inclavare.kbs.storage.sealed`. Design, threat
model and operations: docs/kbs.md, "Encryption at rest".
"""

from __future__ import annotations

from .envelope import Sealed, VersionMarks, rewrap, seal, unseal
from .kek import Kek, KekConfig, KekSource, Keyring, kek_id, load_kek, load_keyring

__all__ = [
    "Kek",
    "KekConfig",
    "KekSource",
    "Keyring",
    "Sealed",
    "VersionMarks",
    "kek_id",
    "load_kek",
    "load_keyring",
    "rewrap",
    "seal",
    "unseal",
]
