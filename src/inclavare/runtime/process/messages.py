"""The spawn protocol between `rune create` and the container's processes.

Three processes take part, named as in youki and runc's nsexec stages:

* **main** (``rune create``, in the host namespaces),
* **intermediate** (``rune:[1:INTER]``, forked by main): joins and creates
  namespaces, then forks init and exits,
* **init** (``rune:[2:INIT]``, forked by intermediate; pid 1 of a new pid
  namespace): builds the rootfs, waits for `rune start`, then execs the
  container process (or, for enclave containers, becomes the init-runelet).

There is no re-exec: rune is single-threaded until the fork, so the forked
interpreter is safe to keep using (runc re-execs only because Go cannot fork).

main and the children talk over one pair of pipes (``Channel``); each message
is one line: a kind, a space, a JSON payload. What the children do comes
from the frozen launch plan (runtime/plan.py), what they do it with from
launch.LaunchFds, how init hands over from its executor (executor.py).
Sequence::

    main                              intermediate                    init
     | fork ------------------------->|
     |-- go ------------------------->| setns(joined namespaces)
     |                                | unshare(CLONE_NEWUSER)         (if new userns)
     |<- userns ----------------------|
     | write uid_map, gid_map          |
     |-- mapped --------------------->| setresuid(0); unshare(the rest
     |                                |   but cgroup)
     |                                | fork ---------------------------->|
     |<- pid {pid} -------------------| _exit(0)                          |
     | join cgroups (init pid)                                            | executor.load (enclave: the PAL)
     | waitpid(intermediate)                                              | rslave; mounts, devices, sysctl
     |<- hooks -------------------------------------------------------------|   (targets inside the rootfs)
     | prestart + createRuntime hooks                                       |
     |-- hooks-done ------------------------------------------------------->| unshare(cgroup ns);
     |                                                                      | createContainer hooks;
     |                                                                      | read-only and masked paths;
     |                                                                      | pivot_root; propagation, ro
     |                                                                      | root, hostname, keyring, tty;
     |                                                                      | executor.setup (pal_init)
     |  enclave with a KBS (enclave/provision/; TLS ends in init):          |   the brokers it pins checked
     |<- kbs-connect {host, port} ------------------------------------------|   (+ a socketpair end over the
     | connect(host:port) if it is one of enclave.kbs.url                   |    control socket, SCM_RIGHTS)
     |-- kbs-connected {} or {"error"} ------------------------------------>|
     |== copy bytes: socketpair <-> TCP (host_relay.py; rune sees only TLS) | TLS, pin, RCAR, GETs
     |   ... one kbs-connect per connection ...                             |
     |<- kbs-done ----------------------------------------------------------| secrets in their tmpfs
     |                                                                      | user, caps, cwd, lookup
     |<- ready -------------------------------------------------------------|
     | write state.json, --pid-file; exit 0                                 | open(exec.fifo, O_WRONLY)
                                                                             |   ... blocks until start
    rune start: open(exec.fifo, O_RDONLY) ------------------------------------>| write "0"
                read "0", then wait for EOF (the fifo fd is CLOEXEC at       | startContainer hooks
                the container process's execve: EOF means it happened;       | executor.run: "P path",
                an errno before EOF: it failed, see execerr.py);             |   execve(dmz) -> execve(args)
                poststart hooks                                              |   (enclave: the runelet)

Without a user namespace, namespaces to join or a time namespace there is no
intermediate: main itself forks init into the new pid namespace
(unshare(CLONE_NEWPID), fork, setns back to its own), init unshares the
other namespaces, and go, userns, mapped and pid are not sent
(intermediate.py ``unneeded``).

``hooks-done`` also tells init it is in the container's cgroups. With no
prestart, createRuntime or createContainer hook to order against, init does
not wait for it after ``hooks``: it goes on with the read-only and masked
paths, pivot_root, hostname, keyring and tty while main joins the cgroups
(one RCU grace period on cgroup v1), and reads ``hooks-done`` (then
unshare(cgroup ns)) before executor.setup and the user, capabilities and
limits of the process.

For a container without a mount namespace of its own, ``hooks`` carries
``{"mounts": [[mount id, destination], ...]}``: the mounts init made in the
host's namespace, which create records so that delete removes those and
nothing else (rootfs/owned.py).

Any child may instead send ``error {"msg": ...}``; main then kills what it
started and removes everything it created. A child that reads EOF (main
died) exits at once, so a killed `rune create` leaves no half-made container.
"""

from __future__ import annotations

import os

from ... import _fastjson
from ...errors import InitFailed

GO, USERNS, MAPPED, PID, HOOKS, HOOKS_DONE, READY, ERROR = (
    "go", "userns", "mapped", "pid", "hooks", "hooks-done", "ready", "error",
)  # fmt: skip


class ChannelClosed(InitFailed):
    """The other side went away (it died or exited) in the middle of the protocol."""


class Channel:
    """One direction of lines in, one direction of lines out, over pipes."""

    __slots__ = ("_buf", "_early", "rfd", "wfd")

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self._buf = b""
        self._early: list[tuple[str, object]] = []

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        """(parent end, child end); close the other end after fork."""
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        return Channel(r1, w2), Channel(r2, w1)

    def send(self, kind: str, payload: object = None) -> None:
        if self.wfd < 0:
            raise ChannelClosed("spawn protocol: channel already closed")
        line = kind if payload is None else kind + " " + _fastjson.dumps(payload)
        data = (line + "\n").encode()
        try:
            while data:
                n = os.write(self.wfd, data)
                data = data[n:]
        except OSError as exc:  # EPIPE: the other side is gone; it may have said why first
            reason = self.pending_error()
            if reason is not None:
                raise InitFailed(reason) from None
            raise ChannelClosed(f"spawn protocol: sending {kind!r}: {exc.strerror} (the other side exited)") from None

    def pending_error(self) -> str | None:
        """An ``error`` message already waiting to be read, without blocking
        (after which the channel is good only for closing)."""
        try:
            os.set_blocking(self.rfd, False)
            while chunk := os.read(self.rfd, 65536):
                self._buf += chunk
        except OSError:
            pass
        for line in self._buf.split(b"\n"):
            kind, _, rest = line.decode(errors="replace").partition(" ")
            if kind == ERROR:
                payload = _fastjson.loads(rest) if rest else None
                return payload.get("msg", "unknown error") if isinstance(payload, dict) else str(payload)
        return None

    def recv(self) -> tuple[str, object]:
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise ChannelClosed("the container's init process exited during setup")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        kind, _, rest = line.decode().partition(" ")
        return kind, (_fastjson.loads(rest) if rest else None)

    def expect(self, kind: str, early: tuple[str, ...] = ()) -> object:
        """Receive the next message; it must be `kind` (an error message raises).

        intermediate and init write to the same pipe concurrently, so a message
        of a kind in `early` may overtake the one expected (init's ``hooks``
        can arrive before the intermediate's ``pid``): it is kept for the
        next expect() instead of being an error.
        """
        for i, (got, payload) in enumerate(self._early):
            if got == kind:
                del self._early[i]
                return payload
        while True:
            got, payload = self.recv()
            if got in early and got != kind:
                self._early.append((got, payload))
                continue
            break
        if got == ERROR:
            raise InitFailed(payload.get("msg", "unknown error") if isinstance(payload, dict) else str(payload))
        if got != kind:
            raise InitFailed(f"spawn protocol: expected {kind!r}, got {got!r}")
        return payload

    def buffered(self) -> bool:
        """A whole message has been read already (poll on ``rfd`` would not show it)."""
        return b"\n" in self._buf

    def expect_one(self, kinds: tuple[str, ...]) -> tuple[str, object]:
        """The next message, which must be of one of `kinds` (an error message raises)."""
        kind, payload = self.recv()
        if kind == ERROR:
            raise InitFailed(payload.get("msg", "unknown error") if isinstance(payload, dict) else str(payload))
        if kind not in kinds:
            raise InitFailed(f"spawn protocol: expected one of {', '.join(map(repr, kinds))}, got {kind!r}")
        return kind, payload

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = -1  # never write to an fd number reused since
