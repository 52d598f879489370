"""The broker itself, without HTTP: RCAR steps, resource releases and administration.

The starlette app (:mod:`inclavare.kbs.server`) only maps routes to these
calls; every protocol decision is made here, on top of the sans-IO core
(:mod:`inclavare.kbs.protocol`). Time (``clock``, epoch seconds) and
randomness (``rng``) are injected, so tests can expire sessions, tokens
and reference values without sleeping.

- :mod:`.rcar`        ``/auth`` and ``/attest``
- :mod:`.resources`   ``GET /resource/...``: requester, policy, release, JWE
- :mod:`.management`  the admin API
- :mod:`.deps`        what the three share (:class:`Deps`)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from ..admin import AdminAuthenticator
from ..atrest import load_keyring
from ..audit import AuditLog
from ..config import KbsConfig
from ..metrics import KbsMetrics
from ..preflight import load_collateral
from ..storage import KeyState, Storage, open_storage
from ..token import TokenBroker, TokenKey
from .collateral import CollateralCache
from .deps import Deps
from .management import AdminService
from .rcar import RcarService
from .resources import ResourceService

log = logging.getLogger("inclavare.kbs")


class KbsService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.rcar = RcarService(deps)
        self.resources = ResourceService(deps)
        self.admin = AdminService(deps)

    @classmethod
    def from_config(
        cls,
        config: KbsConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[int], bytes] = os.urandom,
        storage: Storage | None = None,
        metrics: KbsMetrics | None = None,
    ) -> KbsService:
        """Build every dependency the config describes (storage opened here unless given).

        Storage opens only under a keyring that reads every row of it, and
        only once no plaintext row is left: a missing or wrong KEK is a
        ConfigError naming ``storage.kek`` before anything is served.
        """
        signing_key = config.token.signing_key
        key = TokenKey.load(signing_key, file=config.source) if signing_key else TokenKey.generate()
        if config.token.signing_key is None:
            log.warning("token.signing_key not set: tokens are signed with a key that dies with this process")
        tokens = TokenBroker(key, config.token.issuer, config.token.lifetime, rng)
        collateral = load_collateral(config)
        admins = AdminAuthenticator(config.admin_keys, config.admin_max_token_lifetime)
        if storage is None:
            keyring = load_keyring(config.storage.kek, config.source)
            storage = open_storage(config.storage, keyring, clock(), config.source)
        deps = Deps(
            config=config,
            storage=storage,
            tokens=tokens,
            collateral=CollateralCache(collateral, storage, config.attestation.collateral_refresh, clock),
            admins=admins,
            audit=AuditLog(config.audit.replica, config.audit.path),
            clock=clock,
            rng=rng,
            metrics=metrics if metrics is not None else KbsMetrics(),
        )
        return cls(deps)

    def reload_keys(self, config: KbsConfig) -> KeyState:
        """Take the KEKs ``config`` names (SIGHUP), if they read every row; else ConfigError and nothing changes."""
        storage = self.deps.storage
        state = storage.reload_keys(load_keyring(config.storage.kek, config.source), config.source)
        log.info("storage.kek reloaded: %s; active in the database: %s", storage.keyring.describe(), state.active)
        return state

    def close(self) -> None:
        self.deps.storage.close()
        self.deps.audit.close()


__all__ = ["Deps", "KbsService"]
