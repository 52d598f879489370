"""The pytest face of the kit: :class:`RuntimeConformance`, one test per check."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from . import lifecycle, processes, reports, signals
from .harness import Kit
from .subject import Subject

CHECKS: list[Callable[[Kit], None]] = [
    lifecycle.probe_shape, lifecycle.probe_is_stable, lifecycle.factory_tee,
    lifecycle.init_once, lifecycle.init_bad_log_level, lifecycle.init_pooled,
    lifecycle.calls_before_init, lifecycle.calls_after_destroy, lifecycle.destroy_without_init,
    processes.exit_statuses, processes.signal_status, processes.stdio_fds, processes.stdin_fd,
    processes.argv_exact, processes.env_exact, processes.log_lines, processes.wait_rules,
    processes.wait_releases_the_gil, processes.concurrent_waits, processes.create_refusals,
    signals.kill_while_waiting, signals.kill_blocked_reader, signals.kill_all, signals.kill_current,
    signals.kill_delivers_the_signal, signals.kill_exited_process, signals.kill_refusals,
    signals.kill_not_supported, lifecycle.destroy_ends_processes,
    reports.local_report, reports.local_report_bad_sizes,
]  # fmt: skip


class RuntimeConformance:
    """Every check as a test. Subclass it as ``Test<Something>`` and give it a
    ``conformance_subject`` fixture returning a :class:`Subject`; pytest does
    not collect this class itself (its name does not start with ``Test``).
    """

    @pytest.fixture
    def kit(self, conformance_subject: Subject) -> Iterator[Kit]:
        kit = Kit(conformance_subject)
        try:
            yield kit
        finally:
            kit.close()


def _as_test(check: Callable[[Kit], None]) -> Callable[[RuntimeConformance, Kit], None]:
    def test(self: RuntimeConformance, kit: Kit) -> None:
        check(kit)

    test.__name__ = test.__qualname__ = f"test_{check.__name__}"
    test.__doc__ = check.__doc__
    return test


for _check in CHECKS:
    setattr(RuntimeConformance, f"test_{_check.__name__}", _as_test(_check))
