"""`inclavare epm serve`: the service on its unix socket, for root only.

Two guards, as for the original's socket but checked rather than assumed:

1. the socket is mode 0600 in a directory of root's that nobody else may
   enter (0700): other users cannot even connect;
2. every connection's peer credentials (SO_PEERCRED, unix(7): the
   credentials of the process that called connect(2)) are read before a
   byte is served, and a peer that is not uid 0 is closed at once, with a
   warning naming its pid and uid. This holds even if the directory or the
   socket is later opened up by mistake, and for a connection made by a
   non-root process that was handed root's access to the path.

gRPC's Python server does not expose its connections, so the socket at
``[grpc] address`` is ours: a gate thread accepts, checks the peer, and
relays the bytes to the gRPC server listening on ``<address>.grpc`` in the
same private directory. The relay is a pair of threads per connection (the
carrier makes one connection per container it prepares).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc

from .._proto.github_com.inclavare_containers.epm.pkg.epm_api.v1alpha1 import api_pb2_grpc as pb_grpc
from .config import EpmConfig
from .errors import EpmError
from .service import EnclavePoolManager
from .store import Store

log = logging.getLogger("inclavare.epm")
_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}
_WORKERS = 8
_MAX_SUN_PATH = 107  # sockaddr_un.sun_path is 108 bytes with its NUL (unix(7))


class RootOnly:
    """What epm's sockets share (this gate and the pool's claim socket, pool/claims.py): a
    listener whose connections are handled only if root made them (:func:`root_peer`)."""

    _listener: socket.socket | None
    refused: int

    def _accept_root(self, where: str, handle: Callable[[socket.socket], None]) -> None:
        """Until :meth:`_stop_listening`: `handle` each root connection (it owns it); close the others."""
        listener = self._listener
        while listener is not None:
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                if self._listener is None:
                    return  # stopped
                log.error("%s: accept: %s", where, exc.strerror)  # EMFILE and the like: keep serving
                time.sleep(0.1)
                continue
            if root_peer(conn, where):
                handle(conn)
            else:
                self.refused += 1
                conn.close()

    def _stop_listening(self, thread: threading.Thread | None) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept(2)
            except OSError:
                pass
            listener.close()
        if thread is not None:
            thread.join(5)


class Server(RootOnly):
    def __init__(self, config: EpmConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.address = config.address
        self.inner = config.address + ".grpc"
        self._grpc: grpc.Server | None = None
        self._listener: socket.socket | None = None
        self._gate: threading.Thread | None = None
        self.refused = 0

    def start(self) -> None:
        if len(os.fsencode(self.inner)) > _MAX_SUN_PATH:
            raise EpmError(self.address, f"too long for a unix socket (with {len('.grpc')} bytes more for gRPC's, "
                           f"at most {_MAX_SUN_PATH - len('.grpc')} bytes)")  # fmt: skip
        private_dir(os.path.dirname(self.address))
        claim_path(self.address)
        claim_path(self.inner)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="epm"),
            options=[("grpc.max_receive_message_length", self.config.max_recv_message_size),
                     ("grpc.max_send_message_length", self.config.max_send_message_size)],
        )  # fmt: skip
        pb_grpc.add_EnclavePoolManagerServicer_to_server(EnclavePoolManager(self.store), server)
        old = os.umask(0o177)  # the sockets are 0600 from the moment they exist
        try:
            server.add_insecure_port(f"unix:{self.inner}")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            listener.bind(self.address)
        finally:
            os.umask(old)
        os.chmod(self.inner, 0o600)
        os.chmod(self.address, 0o600)
        server.start()
        listener.listen(64)
        self._grpc, self._listener = server, listener
        self._gate = threading.Thread(target=self._accept, name="epm-gate", daemon=True)
        self._gate.start()
        log.info("serving v1alpha1.EnclavePoolManager on %s (root only), caches in %s", self.address, self.store.root)

    def stop(self, grace: float = 1.0) -> None:
        self._stop_listening(self._gate)
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        for path in (self.address, self.inner):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _accept(self) -> None:
        self._accept_root(self.address, self._start_relay)

    def _start_relay(self, conn: socket.socket) -> None:
        threading.Thread(target=self._relay, args=(conn,), name="epm-relay", daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            inner.connect(self.inner)
        except OSError as exc:
            log.error("%s: %s", self.inner, exc.strerror)
            inner.close()
            conn.close()
            return
        back = threading.Thread(target=_pump, args=(inner, conn), name="epm-relay", daemon=True)
        back.start()
        _pump(conn, inner)
        back.join()
        conn.close()
        inner.close()


def root_peer(conn: socket.socket, where: str) -> bool:
    """Is the process that connected `conn` root (SO_PEERCRED, unix(7))? A warning names it if not."""
    try:
        pid, uid, _gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError:
        return False
    if uid != 0:
        log.warning("%s: refused a connection from pid %d (uid %d): epm serves root only", where, pid, uid)
    return uid == 0


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def private_dir(path: str) -> None:
    """The socket's directory: created 0700, or already root's and closed to everyone else."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise EpmError(path, f"cannot create the socket's directory: {exc.strerror}") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        raise EpmError(path, f"the socket's directory must be root's and mode 0700 (it is {stat.filemode(st.st_mode)}, "
                       f"uid {st.st_uid}): epm serves root only")  # fmt: skip


def claim_path(path: str, kind: int = socket.SOCK_STREAM) -> None:
    """Remove a stale socket at `path`; refuse if an epm still answers there.
    `kind` is the socket's type: a probe of another type is refused even by a live one."""
    if not os.path.lexists(path):
        return
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise EpmError(path, "exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a crashed epm's leftover
        return
    finally:
        probe.close()
    raise EpmError(path, "another epm is serving on this socket")
