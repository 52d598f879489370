"""The pool as `inclavare epm serve` runs it: claim socket, metrics, manager."""

from __future__ import annotations

from .claims import ClaimServer
from .manager import PoolManager
from .metrics import MetricsServer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config import EpmConfig


class Pool:
    def __init__(self, config: EpmConfig, command: list[str] | None = None) -> None:
        """`command`: how to start an instance (tests start a fake one)."""
        self.manager = PoolManager(config.enclaves, command=command, refill_delay=config.refill_delay_ms / 1000)
        self.claims = ClaimServer(config.socket, self.manager)
        self.http = MetricsServer(config.metrics_address, self.manager.metrics) if config.metrics_address else None

    def start(self) -> None:
        """Serve claims and metrics, and start filling in the background (this does not wait for it)."""
        try:
            self.claims.start()
            if self.http is not None:
                self.http.start()
        except BaseException:
            self.claims.stop()
            raise
        self.manager.start()

    def stop(self) -> None:
        """Stop answering, then kill the instances not handed out (handed-out ones live on)."""
        if self.http is not None:
            self.http.stop()
        self.claims.stop()
        self.manager.stop()
