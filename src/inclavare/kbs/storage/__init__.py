"""Storage for the broker: one interface, SQLite (embedded default) and PostgreSQL (replicas).

- :mod:`.interface`  records, what "released" means, the :class:`Storage` protocol
- :mod:`.dialect`    the cursor, the dialect, a transaction per call
- :mod:`.sql`        schema and statements shared by both backends
- :mod:`.sealed`     resources sealed under the keyring's KEKs; migration and re-wrapping
- :mod:`.rates`      rate-limit state shared by replicas (GCRA)
- :mod:`.sqlite`     single broker, embedded
- :mod:`.postgres`   several replicas on one database
"""

from __future__ import annotations

from ..atrest.kek import Keyring
from ..config import StorageConfig
from .interface import AuditRecord, KeyState, ReferenceValue, Release, Storage

__all__ = ["AuditRecord", "KeyState", "ReferenceValue", "Release", "Storage", "connect", "open_storage"]


def connect(config: StorageConfig, keyring: Keyring) -> Storage:
    """The backend the config names, schema created, keys not yet checked (PostgreSQL imported only when used)."""
    if config.type == "postgres":
        from .postgres import PostgresStorage

        assert config.dsn is not None
        return PostgresStorage(config.dsn, keyring)
    from .sqlite import SqliteStorage

    return SqliteStorage(config.path, keyring)


def open_storage(config: StorageConfig, keyring: Keyring, now: float, file: str = "kbs.toml") -> Storage:
    """Storage a broker may serve from: :meth:`~Storage.verify_keys` passed (else ConfigError, nothing left open)."""
    storage = connect(config, keyring)
    try:
        storage.verify_keys(now, file)
    except BaseException:
        storage.close()
        raise
    return storage
