"""The messages of the agent protocol and their JSON form (see :mod:`.agent`).

Each message is a JSON object with a ``"type"`` member. Fields are checked
strictly on the way in, with an error that names message and field; unknown
members are ignored, so a newer rune exec can talk to an older init-runelet
that still runs a container. argv and env are JSON *arrays*: the original's
protobuf carried them as space-joined strings, which split every argument
that contains a space (``rune/libenclave/proto/agent-service.proto``, ``Execute``).
"""

from __future__ import annotations

import binascii  # not base64: it imports `re`, which `rune exec` should not pay for

from ..attestation import REPORT_DATA_SIZE  # SGX REPORTDATA
from .errors import AgentProtocolError

TARGETINFO_SIZE = 512  # SGX TARGETINFO (Intel SDM Vol. 3D 38.16)
QUOTE_TYPES = ("", "epidUnlinkable", "epidLinkable", "ecdsa")  # `rune attest --quote-type`
SIGNAL_MAX = 64  # SIGRTMAX on Linux x86-64
_HEX = frozenset("0123456789abcdefABCDEF")  # not string.hexdigits: `string` imports `re`

Wire = dict[str, object]


class _Base:
    """Equality and repr over ``FIELDS``, the JSON members besides type."""

    TYPE = ""
    FIELDS: tuple[str, ...] = ()
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.FIELDS)})"


class ExecRequest(_Base):
    """runelet -> init: run a program in the enclave. The program's stdin,
    stdout and stderr travel with this frame as SCM_RIGHTS (``stdio``)."""

    TYPE, FIELDS = "exec", ("argv", "env", "cwd", "tty")
    __slots__ = ("argv", "cwd", "env", "stdio", "tty")

    def __init__(self, argv: list[str], env: list[str], cwd: str = "/", tty: bool = False) -> None:
        self.argv, self.env, self.cwd, self.tty = list(argv), list(env), cwd, tty
        self.stdio: tuple[int, int, int] | None = None  # set by the receiving connection

    def to_wire(self) -> Wire:
        return {"type": self.TYPE, "argv": self.argv, "env": self.env, "cwd": self.cwd, "tty": self.tty}

    @classmethod
    def from_wire(cls, obj: Wire) -> ExecRequest:
        argv = _strings(obj, "argv", cls.TYPE)
        if not argv:
            raise _bad(cls.TYPE, "argv", "must not be empty")
        env = _strings(obj, "env", cls.TYPE)
        if any("=" not in e for e in env):
            raise _bad(cls.TYPE, "env", "entries must be KEY=VALUE")
        cwd = _text(obj, "cwd", cls.TYPE)
        if not cwd.startswith("/"):
            raise _bad(cls.TYPE, "cwd", "must be an absolute path")
        return cls(argv, env, cwd, _flag(obj, "tty", cls.TYPE))


class AttestRequest(_Base):
    """runelet -> init: a local report (``is_ra`` false) or remote attestation.
    An empty ``target_info`` asks the init-runelet to get the QE's from aesmd."""

    TYPE, FIELDS = "attest", ("report_data", "target_info", "is_ra", "quote_type")
    __slots__ = FIELDS

    def __init__(self, report_data: bytes = b"", target_info: bytes = b"", is_ra: bool = False,
                 quote_type: str = "") -> None:  # fmt: skip
        self.report_data, self.target_info, self.is_ra, self.quote_type = report_data, target_info, is_ra, quote_type

    def to_wire(self) -> Wire:
        return {"type": self.TYPE, "report_data": self.report_data.hex(), "target_info": self.target_info.hex(),
                "is_ra": self.is_ra, "quote_type": self.quote_type}  # fmt: skip

    @classmethod
    def from_wire(cls, obj: Wire) -> AttestRequest:
        report_data = _hex(obj, "report_data", cls.TYPE)
        if len(report_data) > REPORT_DATA_SIZE:
            raise _bad(cls.TYPE, "report_data", f"at most {REPORT_DATA_SIZE} bytes, got {len(report_data)}")
        target_info = _hex(obj, "target_info", cls.TYPE)
        if len(target_info) not in (0, TARGETINFO_SIZE):
            raise _bad(cls.TYPE, "target_info", f"must be empty or {TARGETINFO_SIZE} bytes, got {len(target_info)}")
        quote_type = _text(obj, "quote_type", cls.TYPE)
        if quote_type not in QUOTE_TYPES:
            raise _bad(cls.TYPE, "quote_type", f"unknown quote type {quote_type!r}")
        return cls(report_data, target_info, _flag(obj, "is_ra", cls.TYPE), quote_type)


class Kill(_Base):
    """runelet -> init: a signal the runelet caught, for the running program."""

    TYPE, FIELDS = "kill", ("sig",)
    __slots__ = FIELDS

    def __init__(self, sig: int) -> None:
        self.sig = sig

    def to_wire(self) -> Wire:
        return {"type": self.TYPE, "sig": self.sig}

    @classmethod
    def from_wire(cls, obj: Wire) -> Kill:
        return cls(_int(obj, "sig", cls.TYPE, 1, SIGNAL_MAX))


class ExecResponse(_Base):
    """init -> runelet: the program's exit code (0-255, 128+signal), or why it did not run."""

    TYPE, FIELDS = "exec_response", ("exit_code", "error")
    __slots__ = FIELDS

    def __init__(self, exit_code: int, error: str = "") -> None:
        self.exit_code, self.error = exit_code, error

    def to_wire(self) -> Wire:
        return {"type": self.TYPE, "exit_code": self.exit_code, "error": self.error}

    @classmethod
    def from_wire(cls, obj: Wire) -> ExecResponse:
        return cls(_int(obj, "exit_code", cls.TYPE, 0, 255), _text(obj, "error", cls.TYPE))


class AttestResponse(_Base):
    """init -> runelet: the REPORT (base64 on the wire), or why there is none."""

    TYPE, FIELDS = "attest_response", ("report", "error")
    __slots__ = FIELDS

    def __init__(self, report: bytes = b"", error: str = "") -> None:
        self.report, self.error = report, error

    def to_wire(self) -> Wire:
        return {
            "type": self.TYPE,
            "report": binascii.b2a_base64(self.report, newline=False).decode(),
            "error": self.error,
        }

    @classmethod
    def from_wire(cls, obj: Wire) -> AttestResponse:
        text = _text(obj, "report", cls.TYPE)
        try:
            report = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            raise _bad(cls.TYPE, "report", "not base64") from None
        return cls(report, _text(obj, "error", cls.TYPE))


Message = ExecRequest | AttestRequest | Kill | ExecResponse | AttestResponse
REQUESTS: dict[str, type[Message]] = {m.TYPE: m for m in (ExecRequest, AttestRequest, Kill)}
RESPONSES: dict[str, type[Message]] = {m.TYPE: m for m in (ExecResponse, AttestResponse)}


def _bad(kind: str, field: str, reason: str) -> AgentProtocolError:
    return AgentProtocolError(f"agent {kind} message: {field}: {reason}")


def _get(obj: Wire, field: str, kind: str) -> object:
    if field not in obj:
        raise _bad(kind, field, "missing")
    return obj[field]


def _text(obj: Wire, field: str, kind: str) -> str:
    value = _get(obj, field, kind)
    if not isinstance(value, str):
        raise _bad(kind, field, "must be a string")
    if "\0" in value:
        raise _bad(kind, field, "contains a NUL character")
    return value


def _strings(obj: Wire, field: str, kind: str) -> list[str]:
    value = _get(obj, field, kind)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(kind, field, "must be an array of strings")
    if any("\0" in v for v in value):
        raise _bad(kind, field, "contains a NUL character")
    return value


def _flag(obj: Wire, field: str, kind: str) -> bool:
    value = _get(obj, field, kind)
    if not isinstance(value, bool):
        raise _bad(kind, field, "must be true or false")
    return value


def _int(obj: Wire, field: str, kind: str, low: int, high: int) -> int:
    value = _get(obj, field, kind)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(kind, field, "must be an integer")
    if not low <= value <= high:
        raise _bad(kind, field, f"must be {low} to {high}, got {value}")
    return value


def _hex(obj: Wire, field: str, kind: str) -> bytes:
    text = _text(obj, field, kind)
    if len(text) % 2 or not _HEX.issuperset(text):
        raise _bad(kind, field, "not an even number of hex digits")
    return bytes.fromhex(text)
