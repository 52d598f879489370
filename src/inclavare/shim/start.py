"""``containerd-shim-rune-v2 start``: make sure a shim serves this container, print its address.

containerd runs ``<shim> -namespace NS -address A -publish-binary B -id ID
[-debug] start`` in the bundle directory, with the options Any on stdin and
$TTRPC_ADDRESS set, and reads the address from the output
(runtime/v2/binary.go Start, runtime/v2/shim/util.go Command). As the runc
shim does (runtime/v2/runc/manager/manager_linux.go Start):

* containers are grouped: the ``io.kubernetes.cri.sandbox-id`` annotation
  (a pod; the CRI plugin sets it on the sandbox and on each container) or
  ``io.containerd.runc.v2.group``, else the container is its own group; one
  shim serves a group;
* the group's socket is ``unix:///run/containerd/s/<sha256(address/ns/group)>``
  (runtime/v2/shim/util_unix.go SocketAddress), mode 0600; if it is bound and
  answers, that shim serves this container too; a stale one is removed;
* the address is written to ``address`` in the bundle (containerd reads it
  back when it restarts) and printed;
* the shim's OOM score is containerd's + 1 (AdjustOOMScore): the OOM killer
  takes the shim before containerd.

Where the runc shim re-executes itself to get the long-lived server, this
process forks: the child is that server (:mod:`.daemon`), and the
interpreter's start-up is paid once per pod, not twice. The parent waits
until the child says it serves (or why it cannot), so a shim that cannot
start fails `start` with its reason. This module imports only what `start`
needs; the server's imports happen in the child.
"""

from __future__ import annotations

import os

from .. import _fastjson
from ..errors import InclavareError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .daemon import ShimFlags

SOCKET_DIR = "/run/containerd/s"  # socketRoot ("/run/containerd") + "s"
GROUP_LABELS = ("io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id")  # order matters (upstream's)
SOCKET_PATH_LIMIT = 106  # util_unix.go socketPathLimit


class StartError(InclavareError):
    """`start` failed; the message is what containerd shows."""


def socket_address(containerd_address: str, namespace: str, group: str) -> str:
    try:
        from _sha256 import sha256  # hashlib costs a few ms of start-up; the C module alone does not
    except ImportError:  # renamed _sha2 in Python 3.12
        from hashlib import sha256

    key = os.path.join(containerd_address, namespace, group).encode()
    return f"unix://{SOCKET_DIR}/{sha256(key).hexdigest()}"


def group_of(container_id: str, bundle: str) -> str:
    with open(os.path.join(bundle, "config.json"), "rb") as f:
        spec = _fastjson.loads(f.read())
    annotations = (spec.get("annotations") or {}) if isinstance(spec, dict) else {}
    for label in GROUP_LABELS:
        if isinstance(annotations, dict) and isinstance(annotations.get(label), str):
            return str(annotations[label])
    return container_id


def write_address(bundle: str, address: str) -> None:
    """Atomically, as WriteAddress: a temp file in the bundle, then rename."""
    tmp = os.path.join(bundle, ".address")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_SYNC, 0o666)
    try:
        os.write(fd, address.encode())
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(bundle, "address"))


def start(flags: ShimFlags, options: bytes) -> str:
    """Run `start`: returns the address to print."""
    import _socket
    import errno

    bundle = os.getcwd()
    address = socket_address(flags.address, flags.namespace, group_of(flags.id, bundle))
    path = address.removeprefix("unix://")
    os.makedirs(SOCKET_DIR, mode=0o700, exist_ok=True)
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise StartError(f"create new shim socket: {exc}") from None
        if _answers(path):  # a shim of this group already serves it
            listener.close()
            write_address(bundle, address)
            return address
        os.unlink(path)  # left by a shim that died
        listener.bind(path)
    pid = 0
    try:
        os.chmod(path, 0o600)
        listener.listen(128)
        write_address(bundle, address)
        pid = _fork_server(listener, flags, options, address)
        adjust_oom_score(pid)
    except BaseException:
        if pid:  # a server nobody will ever talk to (upstream kills it too)
            os.kill(pid, 9)
        os.unlink(path)
        raise
    return address


def _answers(path: str) -> bool:
    import _socket

    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    probe.settimeout(0.1)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _fork_server(listener: object, flags: ShimFlags, options: bytes, address: str) -> int:
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the server; never returns
        os.close(ready_r)
        from .daemon import run_forked

        run_forked(listener, flags, options, address, ready_w)
    os.close(ready_w)
    chunks = []
    while chunk := os.read(ready_r, 4096):
        chunks.append(chunk)
    os.close(ready_r)
    said = b"".join(chunks).decode(errors="replace").strip()
    if said != "ok":
        raise StartError(said or "the shim exited while starting (its log has why)")
    return pid


def adjust_oom_score(pid: int) -> None:
    """The shim's oom_score_adj: containerd's + 1, at most 1000 (util_unix.go AdjustOOMScore)."""
    with open(f"/proc/{os.getppid()}/oom_score_adj") as f:
        score = min(int(f.read()) + 1, 1000)
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(score))
    except OSError as exc:
        raise StartError(f"failed to adjust OOM score for shim: set shim OOM score: {exc}") from None
