"""Container state on disk: ``<root>/<id>/state.json`` and friends.

Layout of a container directory (mode 0711, like runc's)::

    state.json   this module's State, written atomically (temp file + rename)
    exec.fifo    exists from create until start; init blocks opening it
    agent.sock   enclave containers only: the init-runelet's agent socket

Status is *derived* every time (runc refreshState, crun status.c), never
trusted from the file alone:

    creating  state.json says so (create has not finished)
    created   init is alive and exec.fifo still exists
    running   init is alive, the fifo is gone (and not frozen)
    paused    init is alive and its cgroup is frozen
    stopped   init is gone, or its pid now belongs to another process
              (the recorded start time differs: a recycled pid)
"""

from __future__ import annotations

import os

from .. import _fastjson
from .._sys import proc
from ..errors import ContainerExists, ContainerNotFound, InclavareError, InvalidTransition

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    _T = TypeVar("_T")


class Status(str):
    """A container's status: one of the five constants below.

    A ``str`` (state.json and `rune state` print it as is, comparisons with
    text work) of its own type, so that signatures say which strings are
    statuses; not an ``enum.Enum``, whose import costs rune's start-up ~3 ms.
    """

    __slots__ = ()


CREATING, CREATED, RUNNING, PAUSED, STOPPED = map(Status, ("creating", "created", "running", "paused", "stopped"))

# The lifecycle (runtime-spec runtime.md "Lifecycle"; runc's
# libcontainer/container_linux.go states), one row per status: the verbs
# allowed in it and the status each leads to. Verbs that change nothing
# (exec, update, attest, ps, events) lead back to the same status; kill leads
# to stopped once the process has exited; None is "deleted"::
#
#   creating --create done--> created --start--> running --pause--> paused
#      |                         |                  ^ <----resume----- |
#      |                         +---kill / exit----+-------------------+--> stopped --delete--> (gone)
#      +--(its `rune create` died)----------------------------------------->
#
# `delete --force` is allowed from every status: it stops the container first.
TRANSITIONS: dict[Status, dict[str, Status | None]] = {
    CREATING: {"delete --force": None},
    CREATED: {"start": RUNNING, "kill": STOPPED, "exec": CREATED, "update": CREATED, "attest": CREATED,
              "ps": CREATED, "events": CREATED, "delete --force": None},
    RUNNING: {"pause": PAUSED, "kill": STOPPED, "exec": RUNNING, "update": RUNNING, "attest": RUNNING,
              "ps": RUNNING, "events": RUNNING, "delete --force": None},
    PAUSED: {"resume": RUNNING, "kill": STOPPED, "update": PAUSED, "ps": PAUSED, "events": PAUSED,
             "delete --force": None},
    STOPPED: {"delete": None, "delete --force": None},
}  # fmt: skip


def transition(container_id: str, status: Status, verb: str) -> Status | None:
    """The status `verb` leads to from `status`, or :class:`InvalidTransition`."""
    allowed = TRANSITIONS[status]
    if verb not in allowed:
        raise InvalidTransition(container_id, status, verb)
    return allowed[verb]


STATE_FILE = "state.json"
FIFO = "exec.fifo"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(container_id: str) -> None:
    """Container ids as runc accepts them: ``^[\\w+\\-.]+$``, not "." or ".."."""
    if not container_id or container_id in (".", "..") or not set(container_id) <= _ID_CHARS:
        raise InclavareError(f"invalid container id {container_id!r}: use letters, digits, _ + - .")
    if len(container_id) > 1024:
        raise InclavareError("invalid container id: longer than 1024 characters")


class State:
    """What rune knows about one container, persisted as state.json."""

    __slots__ = (
        "annotations",
        "bundle",
        "cgroup",
        "config",
        "created",
        "creating",
        "dir",
        "extra",
        "id",
        "owner",
        "pid",
        "rootfs",
        "start_time",
    )  # fmt: skip

    def __init__(self, container_id: str, directory: str) -> None:
        self.id = container_id
        self.dir = directory
        self.pid = 0
        self.start_time: int | None = None
        self.bundle = ""
        self.rootfs = ""
        self.created = ""
        self.owner = ""
        self.annotations: dict[str, str] = {}
        self.config: dict[str, object] = {}  # the bundle's config.json as of create
        self.creating = True
        self.cgroup: dict[str, object] = {}  # cgroup manager's saved paths
        self.extra: dict[str, object] = {}  # e.g. "enclave": enclave config (PAL issue)

    # -- persistence -----------------------------------------------------
    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "init_process_pid": self.pid, "init_process_start": self.start_time,
            "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created, "owner": self.owner,
            "annotations": self.annotations, "config": self.config, "creating": self.creating,
            "cgroup": self.cgroup, "extra": self.extra,
        }  # fmt: skip

    @classmethod
    def from_json(cls, container_id: str, directory: str, doc: dict[str, object]) -> State:
        """The state `to_json` wrote; a member of the wrong type is a corrupt state."""
        st = cls(container_id, directory)
        get = _Reader(directory, doc)
        st.pid = get.of("init_process_pid", int, 0)
        start = doc.get("init_process_start")
        st.start_time = None if start is None else get.of("init_process_start", int, 0)
        st.bundle = get.of("bundle", str, "")
        st.rootfs = get.of("rootfs", str, "")
        st.created = get.of("created", str, "")
        st.owner = get.of("owner", str, "")
        st.annotations = get.of("annotations", dict, {})
        st.config = get.of("config", dict, {})
        st.creating = bool(doc.get("creating"))
        st.cgroup = get.of("cgroup", dict, {})
        st.extra = get.of("extra", dict, {})
        return st

    def save(self) -> None:
        """Write state.json atomically: readers see the old or the new file, never half.

        No fsync: the state root lives on /run (tmpfs on a normal host) and
        means nothing after a reboot; rename alone gives atomicity.
        """
        tmp = os.path.join(self.dir, f".{STATE_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _fastjson.dumps(self.to_json()).encode())
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(self.dir, STATE_FILE))

    # -- derived status --------------------------------------------------
    def require(self, verb: str) -> Status:
        """The derived status, if `verb` may act on it (:data:`TRANSITIONS`); else InvalidTransition."""
        status = self.status()
        transition(self.id, status, verb)
        return status

    def status(self) -> Status:
        if self.creating:
            # Still being made only while the `rune create` that makes it lives:
            # a create killed half-way leaves a "stopped" container that
            # `delete` can remove, never a "creating" one forever.
            creator = self.extra.get("creator")
            making = isinstance(creator, list) and proc.is_alive(int(creator[0]), creator[1])
            if not making:
                return STOPPED
            return CREATING if self.pid == 0 or proc.is_alive(self.pid, self.start_time) else STOPPED
        if not proc.is_alive(self.pid, self.start_time):
            return STOPPED
        if os.path.exists(os.path.join(self.dir, FIFO)):
            return CREATED
        if self._frozen():
            return PAUSED
        return RUNNING

    def _frozen(self) -> bool:
        from .cgroups import is_frozen

        return is_frozen(self.cgroup)

    def oci_state(self, status: Status | None = None) -> dict[str, object]:
        """The state document of the OCI runtime spec (runtime.md#state), as `rune state`
        prints it; `status` overrides the derived one (hooks get the status of their phase)."""
        status = status or self.status()
        return {
            "ociVersion": self.config.get("ociVersion", ""), "id": self.id,
            "pid": self.pid if status != STOPPED else 0, "status": status, "bundle": self.bundle,
            "rootfs": self.rootfs, "created": self.created, "owner": self.owner,
            **({"annotations": self.annotations} if self.annotations else {}),
        }  # fmt: skip


class _Reader:
    """Typed members of a state.json document (absent or null: the default)."""

    __slots__ = ("directory", "doc")

    def __init__(self, directory: str, doc: dict[str, object]) -> None:
        self.directory = directory
        self.doc = doc

    def of(self, key: str, kind: type[_T], default: _T) -> _T:
        value = self.doc.get(key)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            what = {int: "an integer", str: "a string", dict: "an object"}.get(kind, kind.__name__)
            raise InclavareError(f"{self.directory}/{STATE_FILE}: corrupt state: {key} is not {what}")
        return value


def container_dir(root: str, container_id: str) -> str:
    validate_id(container_id)
    return os.path.join(root, container_id)


def load(root: str, container_id: str) -> State:
    directory = container_dir(root, container_id)
    try:
        with open(os.path.join(directory, STATE_FILE), "rb") as f:
            doc = _fastjson.loads(f.read())
    except FileNotFoundError:
        raise ContainerNotFound(container_id) from None
    except _fastjson.JSONError as exc:
        raise InclavareError(f"{directory}/{STATE_FILE}: corrupt state: {exc}") from None
    if not isinstance(doc, dict):
        raise InclavareError(f"{directory}/{STATE_FILE}: corrupt state: not an object")
    return State.from_json(container_id, directory, doc)


def make_dir(root: str, container_id: str) -> str:
    """Create the container's directory; fail if the id is taken."""
    directory = container_dir(root, container_id)
    os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise ContainerExists(container_id) from None
    return directory


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE)))


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file, written atomically (a temp file renamed into place), as runc does."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    # The name is predictable: in a shared directory a planted symlink must
    # not make root write through it (O_EXCL fails on any existing name).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_dir(path: str) -> None:
    """Remove a container's state directory (flat: files only); missing is fine."""
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
