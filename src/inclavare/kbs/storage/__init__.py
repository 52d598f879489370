"""Storage for the broker: one interface, SQLite (embedded default) and PostgreSQL (replicas).

- :mod:`.interface`  records, what "released" means, the :class:`Storage` protocol
- :mod:`.sql`        schema and statements shared by both backends
- :mod:`.sqlite`     single broker, embedded
- :mod:`.postgres`   several replicas on one database
"""

from __future__ import annotations

from ..config import StorageConfig
from .interface import AuditRecord, ReferenceValue, Release, Storage

__all__ = ["AuditRecord", "ReferenceValue", "Release", "Storage", "open_storage"]


def open_storage(config: StorageConfig) -> Storage:
    """The backend the config names (PostgreSQL is imported only when used)."""
    if config.type == "postgres":
        from .postgres import PostgresStorage

        assert config.dsn is not None
        return PostgresStorage(config.dsn)
    from .sqlite import SqliteStorage

    return SqliteStorage(config.path)
