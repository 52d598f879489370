"""One error hierarchy for all of inclavare.

    InclavareError                 exit 1 unless a subclass says otherwise
    ├── UsageError                 bad command line (runc: "Incorrect Usage")
    ├── SpecError                  config.json is malformed or invalid (names file, field, reason)
    ├── ContainerError             lifecycle problems
    │   ├── ContainerNotFound      "container does not exist"
    │   ├── ContainerExists        duplicate id
    │   ├── InvalidTransition      e.g. start of a running container
    │   └── InitFailed             the container's init reported an error during create
    ├── SyscallError               a kernel call failed (op, path, errno)
    ├── UntrustedPath              a file rune would trust is not the administrator's
    ├── HookError                  an OCI hook failed or timed out
    ├── PalError                   an enclave runtime (PAL) call failed
    ├── EnclaveError               enclave configuration or runtime problems
    └── AttestationError           evidence could not be produced or verified

The CLI (`inclavare.cli.rune._main`) is the only place that turns these into
an exit status and one line on stderr; the library never exits the process.
runc exits 1 for every runtime error, so rune does too.
"""

from __future__ import annotations


class InclavareError(Exception):
    """Base of every error inclavare raises on purpose."""

    exit_code = 1


class UsageError(InclavareError):
    """The command line is wrong (unknown flag, missing argument)."""


class SpecError(InclavareError):
    """A bundle's config.json is malformed or violates the runtime spec.

    The message always names the file, the JSON field and the reason, e.g.
    ``config.json: process.args: must be a non-empty array``.
    """

    def __init__(self, field: str, reason: str, file: str = "config.json") -> None:
        self.file = file
        self.field = field
        self.reason = reason
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(where + reason)


class ContainerError(InclavareError):
    """A lifecycle operation cannot be done on this container."""


class ContainerNotFound(ContainerError):
    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__("container does not exist")


class ContainerExists(ContainerError):
    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__(f"container with id exists: {container_id}")


class InvalidTransition(ContainerError):
    """A verb the container's status does not allow (runtime/state.py, TRANSITIONS)."""

    def __init__(self, container_id: str, status: str, op: str) -> None:
        self.container_id = container_id
        self.status = status
        self.op = op
        super().__init__(f"cannot {_PHRASES.get(op, op)} container {container_id}: it is {status}{_HINTS.get(op, '')}")


# Verbs that do not read as "cannot <verb> container X".
_PHRASES = {"exec": "exec in", "ps": "list the processes of", "events": "watch the events of"}
# runc's kill of a stopped container says "container not running", and
# containerd's shim takes that text to mean the process has already finished
# (pkg/process checkKillError), so the refusal keeps saying it.
_HINTS = {"delete": " (use --force)", "kill": " (container not running)"}


class InitFailed(ContainerError):
    """The container's init process reported an error while being set up."""


class SyscallError(InclavareError):
    def __init__(self, op: str, errno: int, detail: str = "") -> None:
        import os

        self.op = op
        self.errno = errno
        text = os.strerror(errno) if errno else "failed"
        super().__init__(f"{op}{' ' + detail if detail else ''}: {text}")


class UntrustedPath(InclavareError):
    """A file rune would load or read with root's authority fails the ownership
    walk of :mod:`inclavare._sys.trusted` (names the path and the rule)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class HookError(InclavareError):
    """An OCI hook exited non-zero or ran past its timeout."""


class PalError(InclavareError):
    """An Enclave Runtime PAL call failed; the message names library, call and errno."""


class EnclaveError(InclavareError):
    """Enclave configuration is invalid or the enclave runtime cannot run here."""


class AttestationError(InclavareError):
    """Evidence could not be produced or did not verify."""


def one_line(text: str) -> str:
    """`text` with what is not printable (controls, line separators, the lone
    surrogates of undecodable bytes) escaped: one line, whatever a hostile
    file, image or manifest holds, so that it cannot break an error line or
    forge another log line."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                   for c in text)  # fmt: skip
