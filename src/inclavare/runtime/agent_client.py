"""The runelet side of the agent protocol: `rune exec` and `rune attest`
into an enclave container (docs/architecture.md, "init (init-runelet)"),
as the original's ``rune/libenclave/agent.go`` did, minus its space-joining of argv.

`rune exec` forks a *runelet*: a small relay process that connects to the
init-runelet's agent socket, hands over the program's argv, env and stdio
fds (SCM_RIGHTS), forwards the signals it receives as ``kill`` frames and
exits with the program's exit status. It is a real process so that whoever
runs `rune exec --detach --pid-file` (containerd's shim) has a pid to wait
for, as with a plain container's exec.
"""

from __future__ import annotations

import os
import socket

from ..enclave.agent import RUNELET, AgentConnection, AttestRequest, AttestResponse, ExecRequest, ExecResponse, Kill
from ..errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def _exchange(sock: socket.socket, conn: AgentConnection) -> object:
    """Read until the init-runelet's response arrives (or the connection ends)."""
    from ..enclave.agent import NEED_DATA

    while True:
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        conn.receive_data(sock.recv(65536))


def run_runelet(connect: Callable[[], socket.socket], req: ExecRequest, stdio: tuple[int, int, int]) -> int:
    """In the runelet process: relay one exec; its exit status (127 on failure)."""
    import _signal

    sock = connect()
    conn = AgentConnection(RUNELET)
    socket.send_fds(sock, [conn.send(req)], list(stdio))

    def forward(signum: int, _frame: object) -> None:
        try:
            sock.sendall(conn.send(Kill(signum)))
        except OSError:
            pass

    from .reaper import FORWARDED

    for signum in FORWARDED:
        _signal.signal(signum, forward)
    resp = _exchange(sock, conn)
    if not isinstance(resp, ExecResponse):
        os.write(2, b"rune exec: the enclave agent closed the connection\n")
        return 255
    if resp.error:
        os.write(2, f"rune exec: {resp.error}\n".encode())
    return resp.exit_code


def attest(sock: socket.socket, report_data: bytes, target_info: bytes, is_ra: bool, quote_type: str) -> bytes:
    """One attest request; the report (or evidence) bytes."""
    conn = AgentConnection(RUNELET)
    sock.sendall(conn.send(AttestRequest(report_data, target_info, is_ra, quote_type)))
    resp = _exchange(sock, conn)
    if not isinstance(resp, AttestResponse):
        raise ContainerError("rune attest: the enclave agent closed the connection")
    if resp.error:
        raise ContainerError(f"rune attest: {resp.error}")
    return resp.report
