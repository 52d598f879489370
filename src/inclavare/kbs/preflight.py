"""What ``kbs serve`` loads before it listens, loaded by ``kbs check-config`` too: one code path, one verdict.

``serve`` and ``check-config`` both call :func:`check_tls` and
:func:`load_collateral`; the rest of :func:`preflight` is what
:meth:`KbsService.from_config` loads (token key, KEKs, the audit file's
directory, the database and its keys). So ``check-config`` fails, with the
same located line, wherever ``serve`` would refuse to start — except for
what only exists at run time (the port being free). It creates no audit file
and no SQLite database, and reads the database's keys without initialising
them; on PostgreSQL, missing tables are created as serve would create them.
"""

from __future__ import annotations

import os
import ssl

from ..attestation import CollateralStore
from ..attestation.errors import CollateralError
from .atrest import load_keyring
from .atrest.kek import Keyring
from .config import KbsConfig
from .errors import ConfigError
from .storage import connect
from .storage.sealed import check_keys
from .token import TokenKey


def check_tls(cert: str, key: str, file: str = "kbs.toml") -> None:
    """Load the certificate and key once up front, so a mistake is one located line, not a traceback."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError("http.tls_cert", f"{cert} / {key}: {reason}", file) from None


def load_collateral(config: KbsConfig) -> CollateralStore:
    """The files ``attestation.collateral`` names; a ConfigError naming the field if one is refused."""
    try:
        return CollateralStore.from_files(config.attestation.collateral)
    except CollateralError as exc:
        raise ConfigError("attestation.collateral", str(exc), config.source) from None


def check_writable(path: str, location: str, file: str = "kbs.toml") -> None:
    """``path`` can be written (or created, with its missing directories): checked without creating it."""
    target = path if os.path.exists(path) else os.path.dirname(os.path.abspath(path))
    while not os.path.exists(target):  # serve creates missing directories
        target = os.path.dirname(target)
    if not os.access(target, os.W_OK):
        raise ConfigError(location, f"{path}: {target} is not writable", file)


def preflight(config: KbsConfig) -> str:
    """Load everything ``serve`` loads; ConfigError (one located line) where it would refuse; else a summary."""
    http = config.http
    if http.tls_cert is not None and http.tls_key is not None:
        check_tls(http.tls_cert, http.tls_key, config.source)
    if config.token.signing_key is not None:
        TokenKey.load(config.token.signing_key, file=config.source)
    collateral = load_collateral(config)
    keyring = load_keyring(config.storage.kek, config.source)
    if config.audit.path is not None:
        check_writable(config.audit.path, "audit.path", config.source)
    database = _check_storage(config, keyring)
    scheme = "https" if http.tls_cert else "http"
    return (
        f"{config.storage.type} storage ({database}), {len(config.admin_keys)} admin key(s), "
        f"KEK {keyring.describe()}, collateral: {len(collateral.host_keys)} host key(s), "
        f"{len(collateral.tcb_infos)} TCB info, {len(collateral.qe_identities)} QE identities, "
        f"{len(collateral.crls)} CRL(s), {len(collateral.certificates)} certificate(s); {scheme}"
    )


def _check_storage(config: KbsConfig, keyring: Keyring) -> str:
    """The database's keys against the keyring (as serve checks them), without writing to it."""
    if config.storage.type == "sqlite" and not os.path.exists(config.storage.path):
        check_writable(config.storage.path, "storage.path", config.source)
        return "not created yet"
    storage = connect(config.storage, keyring)
    try:
        state = storage.key_state()
        check_keys(keyring, state, config.source, serving=True)
    finally:
        storage.close()
    return f"active KEK {state.active or 'none yet'}"
