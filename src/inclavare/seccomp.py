"""linux.seccomp: system call filtering (config-linux.md#seccomp), via libseccomp.

`rune create` turns the section into libseccomp rules and exports the BPF
program before it forks; the container's init installs it with one seccomp(2)
call right before execve (:func:`..process.workload.execute`), so a profile
only has to allow execve for rune's sake.

The translation follows runc (libcontainer/seccomp) where the spec is silent:

* the native architecture is always filtered; ``architectures`` adds others;
* a syscall name libseccomp does not know is skipped — it may exist on
  another architecture or a newer kernel — but a name that cannot be a
  syscall name at all is refused;
* a rule whose action is the default action is dropped (it changes nothing,
  and libseccomp refuses it with EACCES);
* conditions on different arguments must all hold (one rule); several
  conditions on the *same* argument each become a rule of their own, so any
  of them matches — Docker's and runtime-tools' profiles rely on this;
* ``errnoRet``/``defaultErrnoRet`` default to EPERM and are refused on
  actions other than SCMP_ACT_ERRNO and SCMP_ACT_TRACE (the spec's MUST).

SCMP_ACT_NOTIFY is refused: rune does not implement the listener protocol
(sending the notify fd to ``listenerPath``), and a filter that would block
forever on a missing listener is worse than a clear error.
"""

from __future__ import annotations

import errno
import os
import re

from ._sys import seccomp as sc
from .errors import InclavareError, SpecError, SyscallError

_FIELD = "linux.seccomp"
_MAX_ERRNO = 4095  # include/linux/err.h; the kernel clamps larger SECCOMP_RET_ERRNO data to it
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")  # syscall_64.tbl names: "_llseek", "s390_pci_mmio_read"

# Actions without data (SCMP_ACT_ERRNO and SCMP_ACT_TRACE carry errnoRet).
_ACTIONS = {
    "SCMP_ACT_KILL": sc.SCMP_ACT_KILL,
    "SCMP_ACT_KILL_PROCESS": sc.SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": sc.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_TRAP": sc.SCMP_ACT_TRAP,
    "SCMP_ACT_ALLOW": sc.SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": sc.SCMP_ACT_LOG,
}
_WITH_DATA = {"SCMP_ACT_ERRNO": (sc.scmp_act_errno, _MAX_ERRNO), "SCMP_ACT_TRACE": (sc.scmp_act_trace, 0xFFFF)}
ACTIONS = sorted([*_ACTIONS, *_WITH_DATA])

OPERATORS = {
    "SCMP_CMP_NE": sc.SCMP_CMP_NE,
    "SCMP_CMP_LT": sc.SCMP_CMP_LT,
    "SCMP_CMP_LE": sc.SCMP_CMP_LE,
    "SCMP_CMP_EQ": sc.SCMP_CMP_EQ,
    "SCMP_CMP_GE": sc.SCMP_CMP_GE,
    "SCMP_CMP_GT": sc.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": sc.SCMP_CMP_MASKED_EQ,
}

# config-linux.md#seccomp "architectures"; libseccomp's name is the suffix in lower case.
SPEC_ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)  # fmt: skip

# config-linux.md#seccomp "flags" -> <linux/seccomp.h> bits rune passes to seccomp(2).
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": sc.SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": sc.SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}
# Known but refused: the kernel takes it only with SECCOMP_FILTER_FLAG_NEW_LISTENER (SCMP_ACT_NOTIFY).
_WAIT_KILLABLE_RECV = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"


class Rule:
    """One libseccomp rule: the action for syscall `number` when all `conditions` hold."""

    __slots__ = ("action", "conditions", "field", "name", "number")

    def __init__(
        self, field: str, name: str, number: int, action: int, conditions: list[tuple[int, int, int, int]]
    ) -> None:
        self.field = field  # config field naming the syscall, for errors
        self.name = name
        self.number = number
        self.action = action
        self.conditions = conditions


class Plan:
    """The checked section: default action, extra arches, seccomp(2) flags, rules."""

    __slots__ = ("arches", "default", "flags", "rules")

    def __init__(self, default: int, arches: list[int], flags: int, rules: list[Rule]) -> None:
        self.default = default
        self.arches = arches
        self.flags = flags
        self.rules = rules


class Filter:
    """A compiled filter; :meth:`load` installs it (in init, right before execve)."""

    __slots__ = ("_program",)

    def __init__(self, program: sc.Program) -> None:
        self._program = program

    def program(self) -> tuple[bytes, int]:
        """The BPF code and the seccomp(2) flags: what another process needs to load it."""
        return self._program.code(), self._program.flags

    def allows(self, nr: int, args: tuple[int, ...]) -> bool:
        """Whether the filter lets x86-64 system call `nr` with `args` through."""
        return sc.allows(self._program.code(), nr, args)

    def load(self) -> None:
        try:
            self._program.load()
        except SyscallError as exc:
            if exc.errno != errno.EACCES:
                raise
            # seccomp(2), EACCES: without no_new_privs the caller needs CAP_SYS_ADMIN.
            raise InclavareError(
                "loading the seccomp filter: permission denied: without process.noNewPrivileges "
                "the kernel requires CAP_SYS_ADMIN, which the container process no longer has"
            ) from None


def compile_filter(section: object) -> Filter:
    """Check `section` and build its BPF program (raises SpecError on bad input)."""
    lib = sc.library()
    plan = parse(lib, section)
    ctx = build(lib, plan)
    try:
        code = ctx.export_bpf()
    finally:
        ctx.release()
    try:
        return Filter(sc.Program(code, plan.flags))
    except InclavareError as exc:
        raise SpecError(_FIELD, str(exc)) from None


def pfc(section: object) -> str:
    """The filter for `section` in libseccomp's pseudo filter code (for humans and tests)."""
    lib = sc.library()
    ctx = build(lib, parse(lib, section))
    try:
        return ctx.export_pfc()
    finally:
        ctx.release()


def build(lib: sc.Library, plan: Plan) -> sc.Context:
    ctx = sc.Context(lib, plan.default)
    try:
        # Arches first: libseccomp applies a rule only to the arches present when it is added.
        for token in plan.arches:
            ctx.arch_add(token)
        for rule in plan.rules:
            try:
                ctx.rule_add(rule.action, rule.number, rule.conditions)
            except SyscallError as exc:
                raise SpecError(
                    rule.field, f'libseccomp refused the rule for "{rule.name}": {os.strerror(exc.errno)}'
                ) from None
    except BaseException:
        ctx.release()
        raise
    return ctx


def parse(lib: sc.Library, section: object) -> Plan:
    s = _object(section, _FIELD)
    if "defaultAction" not in s:
        raise SpecError(f"{_FIELD}.defaultAction", "is required")
    default = action(
        s["defaultAction"], s.get("defaultErrnoRet"), f"{_FIELD}.defaultAction", f"{_FIELD}.defaultErrnoRet"
    )
    arches = [
        _arch(lib, name, f"{_FIELD}.architectures[{i}]") for i, name in enumerate(_array(s, "architectures", _FIELD))
    ]
    flags = 0
    for i, name in enumerate(_array(s, "flags", _FIELD)):
        flags |= _flag(name, f"{_FIELD}.flags[{i}]")
    for key in ("listenerPath", "listenerMetadata"):
        if s.get(key) is not None and not isinstance(s[key], str):
            raise SpecError(f"{_FIELD}.{key}", "must be a string")
    rules: list[Rule] = []
    for i, entry in enumerate(_array(s, "syscalls", _FIELD)):
        rules += _rules(lib, entry, f"{_FIELD}.syscalls[{i}]", default)
    return Plan(default, arches, flags, rules)


def action(name: object, errno_ret: object, field: str, errno_field: str) -> int:
    """The libseccomp action value for an OCI action name and optional errnoRet."""
    if not isinstance(name, str):
        raise SpecError(field, "must be a string")
    if name == "SCMP_ACT_NOTIFY":
        raise SpecError(field, "SCMP_ACT_NOTIFY is not supported: rune does not implement the seccomp notify listener")
    if name in _WITH_DATA:
        make, limit = _WITH_DATA[name]
        value = make(errno.EPERM if errno_ret is None else _uint(errno_ret, errno_field, limit))
    elif name in _ACTIONS:
        if errno_ret is not None:
            raise SpecError(errno_field, f"{name} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)")
        value = _ACTIONS[name]
    else:
        raise SpecError(field, f'unknown action "{name}"')
    if not sc.action_available(value):
        raise SpecError(field, f"{name} is not supported by this kernel")
    return value


def _rules(lib: sc.Library, entry: object, field: str, default: int) -> list[Rule]:
    e = _object(entry, field)
    names = e.get("names")
    if not isinstance(names, list) or not names:
        raise SpecError(f"{field}.names", "must be a non-empty array of syscall names")
    if "action" not in e:
        raise SpecError(f"{field}.action", "is required")
    act = action(e["action"], e.get("errnoRet"), f"{field}.action", f"{field}.errnoRet")
    conditions = [_condition(arg, f"{field}.args[{j}]") for j, arg in enumerate(_array(e, "args", field))]
    rules = []
    for k, name in enumerate(names):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SpecError(f"{field}.names[{k}]", f"not a syscall name: {name!r}")
        number = lib.syscall_number(name)
        if number == sc.NR_SCMP_ERROR or act == default:
            continue  # unknown to libseccomp (runc skips these too) / same as the default: nothing to add
        rules += [Rule(f"{field}.names[{k}]", name, number, act, group) for group in _groups(conditions)]
    return rules


def _groups(conditions: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """One rule (AND) unless an argument repeats; then one rule per condition (OR), as runc."""
    indexes = [cond[0] for cond in conditions]
    if len(set(indexes)) == len(indexes):
        return [conditions]
    return [[cond] for cond in conditions]


def _condition(arg: object, field: str) -> tuple[int, int, int, int]:
    a = _object(arg, field)
    for key in ("index", "value", "op"):
        if key not in a:
            raise SpecError(f"{field}.{key}", "is required")
    index = _uint(a["index"], f"{field}.index", 5)  # seccomp_data.args[6]
    value = _uint(a["value"], f"{field}.value", 2**64 - 1)
    value_two = _uint(a.get("valueTwo", 0), f"{field}.valueTwo", 2**64 - 1)
    op = a["op"]
    if op not in OPERATORS:
        raise SpecError(f"{field}.op", f"unknown operator {op!r} (known: {', '.join(sorted(OPERATORS))})")
    # SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo — datum_a is the mask (seccomp_rule_add(3)).
    return (index, OPERATORS[op], value, value_two)


def _arch(lib: sc.Library, name: object, field: str) -> int:
    if not isinstance(name, str) or name not in SPEC_ARCHES:
        raise SpecError(field, f"unknown architecture {name!r}")
    token = lib.arch_resolve(name.removeprefix("SCMP_ARCH_").lower())
    if not token:
        version = ".".join(map(str, lib.version))
        raise SpecError(field, f"{name} is not supported by this host's libseccomp ({version})")
    return token


def _flag(name: object, field: str) -> int:
    if name == _WAIT_KILLABLE_RECV:
        raise SpecError(field, f"{name} only applies to SCMP_ACT_NOTIFY listeners, which rune does not support")
    if not isinstance(name, str) or name not in FLAGS:
        raise SpecError(field, f"unknown flag {name!r}")
    if not sc.flag_supported(FLAGS[name]):
        raise SpecError(field, f"{name} is not supported by this kernel")
    return FLAGS[name]


def _object(value: object, field: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise SpecError(field, "must be an object")
    return value


def _array(obj: dict[str, object], key: str, parent: str) -> list[object]:
    """obj[key] as a list; a missing or null member is an empty list."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{parent}.{key}", "must be an array")
    return value


def _uint(value: object, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise SpecError(field, f"must be an integer from 0 to {maximum}")
    return value


def seccomp_features() -> dict[str, object]:
    """The ``linux.seccomp`` member of `rune features` (runtime-spec features-linux.md)."""
    try:
        lib = sc.library()
    except InclavareError:
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": ACTIONS,
        "operators": sorted(OPERATORS),
        "archs": sorted(a for a in SPEC_ARCHES if lib.arch_resolve(a.removeprefix("SCMP_ARCH_").lower())),
        "knownFlags": sorted([*FLAGS, _WAIT_KILLABLE_RECV]),
        "supportedFlags": sorted(name for name, bit in FLAGS.items() if sc.flag_supported(bit)),
    }
