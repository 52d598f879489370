"""What the three services share: configuration, storage, keys, clock and randomness.

Its own module so that :mod:`.rcar`, :mod:`.resources` and :mod:`.management`
depend on it without importing the package that assembles them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..admin import AdminAuthenticator
from ..audit import AuditLog
from ..config import KbsConfig
from ..metrics import KbsMetrics
from ..policy import PolicyEngine
from ..storage import Storage
from ..token import TokenBroker
from .collateral import CollateralCache


@dataclass
class Deps:
    """What the three services share."""

    config: KbsConfig
    storage: Storage
    tokens: TokenBroker
    collateral: CollateralCache  # the config's files + what admins added (service/collateral.py)
    admins: AdminAuthenticator
    audit: AuditLog
    metrics: KbsMetrics = field(default_factory=KbsMetrics)
    engine: PolicyEngine = field(default_factory=PolicyEngine)
    clock: Callable[[], float] = time.time
    rng: Callable[[int], bytes] = os.urandom
