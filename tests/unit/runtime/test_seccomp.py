"""linux.seccomp translation and validation (no root needed).

Translation is checked two ways: the pseudo filter code libseccomp exports
(proves which rules got in), and real filters loaded in forked children
under no_new_privs (proves what they do: each child calls
sched_get_priority_max(2), whose only argument is a scheduling policy — 1, 2
and 3 are all valid — and reports which calls were refused).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import inclavare
from inclavare import seccomp
from inclavare._sys import consts as c
from inclavare._sys import default as syscalls
from inclavare._sys import seccomp as sc
from inclavare.errors import InclavareError, SpecError

ALLOW = "SCMP_ACT_ALLOW"


def profile(*rules: dict, default: str = ALLOW, **extra: object) -> dict:
    return {"defaultAction": default, "syscalls": list(rules), **extra}


def rule(names: list[str], action: str = "SCMP_ACT_ERRNO", **extra: object) -> dict:
    return {"names": names, "action": action, **extra}


PROBE = "sched_get_priority_max"
POLICIES = [1, 2, 3]  # SCHED_FIFO, SCHED_RR, SCHED_BATCH
# What the child's Python needs after load() under a default-deny profile: report and exit.
CHILD_NEEDS = ["write", "exit_group", "brk", "mmap", "munmap", "mremap", "madvise"]


# The confined process: a fresh interpreter, single-threaded for sure. A fork
# of pytest's process would not be: once a test there has used gRPC, its
# at-fork handlers start threads in every child, and SCMP_ACT_KILL (which
# kills one thread) would leave such a child running forever.
CONFINED = """
import os, resource, sys
sys.path.insert(0, sys.argv[1])
from inclavare._sys import consts as c, seccomp as sc
from inclavare._sys.linux import LinuxSyscalls
try:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core
    program = sc.Program(bytes.fromhex(sys.argv[2]), int(sys.argv[3]))
    policies = [int(p) for p in sys.argv[4:]]
    LinuxSyscalls().prctl(c.PR_SET_NO_NEW_PRIVS, 1)
    program.load()
    results = []
    for policy in policies:
        try:
            os.sched_get_priority_max(policy)
            results.append(0)
        except OSError as exc:
            results.append(exc.errno)
    os.write(1, " ".join(map(str, results)).encode())
except BaseException as exc:
    os.write(1, f"error {exc}".encode())
    os._exit(1)
os._exit(0)
"""
SRC = os.path.dirname(os.path.dirname(inclavare.__file__))


def run_confined(section: dict, policies: list[int]) -> tuple[str, object]:
    """A new process loads the filter and calls sched_get_priority_max(p) for each policy.

    Returns ("exit", [errno or 0 per call]) or ("signal", signum).
    """
    code, flags = seccomp.compile_filter(section).program()
    argv = [sys.executable, "-I", "-S", "-c", CONFINED, SRC, code.hex(), str(flags), *map(str, policies)]
    proc = subprocess.run(argv, capture_output=True, timeout=60)
    if proc.returncode < 0:
        return "signal", -proc.returncode
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    return "exit", [int(x) for x in proc.stdout.split()]


# -- operators, by what the loaded filter does -------------------------------------------
DENIED, OK = 1, 0  # EPERM (the default errnoRet) or success


@pytest.mark.parametrize(
    ("op", "value", "value_two", "expect"),
    [
        ("SCMP_CMP_NE", 2, 0, [DENIED, OK, DENIED]),
        ("SCMP_CMP_LT", 2, 0, [DENIED, OK, OK]),
        ("SCMP_CMP_LE", 2, 0, [DENIED, DENIED, OK]),
        ("SCMP_CMP_EQ", 2, 0, [OK, DENIED, OK]),
        ("SCMP_CMP_GE", 2, 0, [OK, DENIED, DENIED]),
        ("SCMP_CMP_GT", 2, 0, [OK, OK, DENIED]),
        ("SCMP_CMP_MASKED_EQ", 2, 2, [OK, DENIED, DENIED]),  # (arg & value) == valueTwo
    ],
)
def test_operators(op, value, value_two, expect):
    arg = {"index": 0, "value": value, "valueTwo": value_two, "op": op}
    assert run_confined(profile(rule([PROBE], args=[arg])), POLICIES) == ("exit", expect)


def test_conditions_on_one_argument_match_either():
    args = [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"} for v in (1, 3)]
    assert run_confined(profile(rule([PROBE], args=args)), POLICIES) == ("exit", [DENIED, OK, DENIED])


# -- actions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "extra", "expect"),
    [
        ("SCMP_ACT_ERRNO", {}, ("exit", [1])),
        ("SCMP_ACT_ERRNO", {"errnoRet": 28}, ("exit", [28])),
        ("SCMP_ACT_ERRNO", {"errnoRet": 0}, ("exit", [0])),  # refused, yet "succeeds"
        ("SCMP_ACT_TRACE", {}, ("exit", [38])),  # no tracer attached: ENOSYS (seccomp(2))
        ("SCMP_ACT_LOG", {}, ("exit", [0])),
        ("SCMP_ACT_ALLOW", {}, ("exit", [0])),
        ("SCMP_ACT_TRAP", {}, ("signal", signal.SIGSYS)),
        ("SCMP_ACT_KILL", {}, ("signal", signal.SIGSYS)),
        ("SCMP_ACT_KILL_THREAD", {}, ("signal", signal.SIGSYS)),
        ("SCMP_ACT_KILL_PROCESS", {}, ("signal", signal.SIGSYS)),
    ],
)
def test_actions(action, extra, expect):
    if action == ALLOW:
        section = profile(rule([PROBE], ALLOW), rule(CHILD_NEEDS, ALLOW), default="SCMP_ACT_ERRNO")
    else:
        section = profile(rule([PROBE], action, **extra))
    assert run_confined(section, [2]) == expect


def test_default_action_and_errno():
    section = profile(rule(CHILD_NEEDS, ALLOW), default="SCMP_ACT_ERRNO", defaultErrnoRet=13)
    assert run_confined(section, [2]) == ("exit", [13])  # EACCES, from the default action


def test_flags_load():
    flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert run_confined(profile(rule([PROBE]), flags=flags), [2]) == ("exit", [1])


def test_flags_become_kernel_bits():
    plan = seccomp.parse(sc.library(), profile(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert plan.flags == sc.SECCOMP_FILTER_FLAG_LOG | sc.SECCOMP_FILTER_FLAG_TSYNC


def test_load_without_nnp_or_cap_sys_admin_says_why():
    flt = seccomp.compile_filter(profile(rule([PROBE])))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            sc_ = syscalls()
            eff, perm, inh = sc_.capget()
            no_admin = ~(1 << c.CAP_BITS["CAP_SYS_ADMIN"])
            sc_.capset(eff & no_admin, perm & no_admin, inh & no_admin)
            flt.load()
            os.write(w, b"loaded")
        except InclavareError as exc:
            os.write(w, str(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert "permission denied" in out
    assert "process.noNewPrivileges" in out
    assert "CAP_SYS_ADMIN" in out


# -- what gets into the filter (pseudo filter code) ---------------------------------------
def test_pfc_rules_errno_and_arches():
    text = seccomp.pfc(profile(rule(["mkdir"], errnoRet=28), architectures=["SCMP_ARCH_X86"]))
    assert "# filter for arch x86_64" in text
    assert "# filter for arch x86 " in text  # rules are added after the arches, so both have them
    assert text.count('# filter for syscall "mkdir"') == 2
    assert "action ERRNO(28);" in text


def test_pfc_and_within_a_rule_or_across_rules():
    both = [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]
    text = seccomp.pfc(profile(rule(["kill"], args=both)))
    assert text.count("action ERRNO(1);") == 1  # one rule: both must hold
    assert text.index("$a0.lo32 == 1") < text.index("$a1.lo32 == 9")
    either = [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"} for v in (0, 8, 0xFFFFFFFF)]
    text = seccomp.pfc(profile(rule(["personality"], args=either)))
    assert text.count("action ERRNO(1);") == 3


def test_unknown_and_foreign_names_are_skipped():
    # Syntactically fine but unknown to libseccomp (runc skips these), and a syscall
    # that exists only on other arches: neither is an error; neither adds a rule here.
    text = seccomp.pfc(profile(rule(["no_such_syscall_v9", "socketcall", "mkdir"])))
    assert "no_such_syscall_v9" not in text
    assert '"mkdir"' in text


def test_rule_with_default_action_is_dropped():
    text = seccomp.pfc(profile(rule(["mkdir"], ALLOW), rule(["rmdir"])))
    assert '"mkdir"' not in text
    assert '"rmdir"' in text


def test_runc_style_profile_compiles():
    names = ["read", "write", "openat", "close", "execve", "exit_group", "_llseek", "socketcall", "clone3"]
    section = profile(
        rule(names, ALLOW),
        rule(["clone"], ALLOW, args=[{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]),
        default="SCMP_ACT_ERRNO",
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    )
    assert isinstance(seccomp.compile_filter(section), seccomp.Filter)


# -- validation: one clear SpecError naming the field ------------------------------------
BAD = [
    ([], "linux.seccomp: must be an object"),
    ({}, "linux.seccomp.defaultAction: is required"),
    (profile(default="SCMP_ACT_NOPE"), 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"'),
    (profile(default="SCMP_ACT_NOTIFY"), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not supported"),
    (profile(default="SCMP_ACT_KILL", defaultErrnoRet=1),
     "linux.seccomp.defaultErrnoRet: SCMP_ACT_KILL takes no errno"),
    (profile(default="SCMP_ACT_ERRNO", defaultErrnoRet=-1),
     "linux.seccomp.defaultErrnoRet: must be an integer from 0 to 4095"),
    (profile(rule(["mkdir"], errnoRet=4096)), "linux.seccomp.syscalls[0].errnoRet: must be an integer from 0 to 4095"),
    (profile(rule(["mkdir"], errnoRet=True)), "linux.seccomp.syscalls[0].errnoRet: must be an integer"),
    (profile(rule(["mkdir"], errnoRet="1")), "linux.seccomp.syscalls[0].errnoRet: must be an integer"),
    (profile(rule(["mkdir"], "SCMP_ACT_TRACE", errnoRet=65536)),
     "syscalls[0].errnoRet: must be an integer from 0 to 65535"),
    (profile(rule(["mkdir"], ALLOW, errnoRet=1)), "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_ALLOW takes no errno"),
    (profile(rule(["mkdir"], "SCMP_ACT_NOTIFY"), listenerPath="/run/agent.sock"),
     "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported"),
    (profile(rule(["mkdir"], "kill")), 'linux.seccomp.syscalls[0].action: unknown action "kill"'),
    (profile({"names": ["mkdir"]}), "linux.seccomp.syscalls[0].action: is required"),
    (profile(rule(["mkdir"], 7)), "linux.seccomp.syscalls[0].action: must be a string"),
    (profile({"action": ALLOW}), "linux.seccomp.syscalls[0].names: must be a non-empty array"),
    (profile(rule([])), "linux.seccomp.syscalls[0].names: must be a non-empty array"),
    (profile(rule("mkdir")), "linux.seccomp.syscalls[0].names: must be a non-empty array"),
    (profile(rule(["read"]), rule(["mkdir", "rm -rf"])),
     "linux.seccomp.syscalls[1].names[1]: not a syscall name: 'rm -rf'"),
    (profile(rule(["Mkdir"])), "linux.seccomp.syscalls[0].names[0]: not a syscall name: 'Mkdir'"),
    (profile(rule(["../mkdir"])), "not a syscall name"),
    (profile(rule([5])), "linux.seccomp.syscalls[0].names[0]: not a syscall name: 5"),
    (profile(rule(["x" * 65])), "not a syscall name"),
    (profile(rule(["kill"], args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])),
     "linux.seccomp.syscalls[0].args[0].index: must be an integer from 0 to 5"),
    (profile(rule(["kill"], args=[{"index": 0, "op": "SCMP_CMP_EQ"}])),
     "linux.seccomp.syscalls[0].args[0].value: is required"),
    (profile(rule(["kill"], args=[{"index": 0, "value": 1}])),
     "linux.seccomp.syscalls[0].args[0].op: is required"),
    (profile(rule(["kill"], args=[{"value": 1, "op": "SCMP_CMP_EQ"}])),
     "linux.seccomp.syscalls[0].args[0].index: is required"),
    (profile(rule(["kill"], args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}])),
     "args[0].value: must be an integer"),
    (profile(rule(["kill"], args=[{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}])),
     "args[0].value: must be an integer"),
    (profile(rule(["kill"], args=[{"index": 0, "value": 1, "valueTwo": "2", "op": "SCMP_CMP_EQ"}])),
     "args[0].valueTwo: must be"),
    (profile(rule(["kill"], args=[{"index": 0, "value": 1, "op": "=="}])),
     "linux.seccomp.syscalls[0].args[0].op: unknown operator '=='"),
    (profile(rule(["kill"], args=["x"])), "linux.seccomp.syscalls[0].args[0]: must be an object"),
    (profile(rule(["kill"], args={})), "linux.seccomp.syscalls[0].args: must be an array"),
    (profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]),
     "linux.seccomp.architectures[1]: unknown architecture 'SCMP_ARCH_Z80'"),
    (profile(architectures=["x86_64"]), "linux.seccomp.architectures[0]: unknown architecture 'x86_64'"),
    (profile(architectures="SCMP_ARCH_X86"), "linux.seccomp.architectures: must be an array"),
    (profile(flags=["SECCOMP_FILTER_FLAG_NOPE"]), "linux.seccomp.flags[0]: unknown flag 'SECCOMP_FILTER_FLAG_NOPE'"),
    (profile(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]),
     "linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only applies to SCMP_ACT_NOTIFY"),
    (profile(listenerPath=3), "linux.seccomp.listenerPath: must be a string"),
    (profile(syscalls={"names": ["mkdir"]}), "linux.seccomp.syscalls: must be an array"),
    (profile("mkdir"), "linux.seccomp.syscalls[0]: must be an object"),
]  # fmt: skip


@pytest.mark.parametrize(("section", "message"), BAD)
def test_bad_sections(section, message):
    with pytest.raises(SpecError) as info:
        seccomp.compile_filter(section)
    assert message in str(info.value)
    assert str(info.value).startswith("config.json: linux.seccomp")
    assert "\n" not in str(info.value)


def test_spec_arch_unknown_to_this_libseccomp():
    lib = sc.library()
    missing = [a for a in seccomp.SPEC_ARCHES if not lib.arch_resolve(a.removeprefix("SCMP_ARCH_").lower())]
    if not missing:
        pytest.skip("this libseccomp knows every architecture the spec lists")
    with pytest.raises(SpecError, match="not supported by this host's libseccomp"):
        seccomp.compile_filter(profile(architectures=[missing[0]]))


def test_program_size_limits():
    with pytest.raises(InclavareError, match="1 to 4096"):
        sc.Program(b"\0" * 8 * (sc.BPF_MAXINSNS + 1), 0)
    with pytest.raises(InclavareError, match="1 to 4096"):
        sc.Program(b"", 0)


def test_features():
    f = seccomp.seccomp_features()
    assert f["enabled"] is True
    assert "SCMP_ACT_NOTIFY" not in f["actions"]
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG"} <= set(f["actions"])
    assert f["operators"] == sorted(seccomp.OPERATORS)
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(f["archs"])
    assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in f["knownFlags"]
    assert set(f["supportedFlags"]) <= set(f["knownFlags"]) - {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}
    assert "SECCOMP_FILTER_FLAG_TSYNC" in f["supportedFlags"]  # Linux 3.17


# -- the interpreter that tells whether the exec trampoline may report (process/execerr.py) --
NR_SCHED_GET_PRIORITY_MAX = 146  # arch/x86/entry/syscalls/syscall_64.tbl


@pytest.mark.parametrize(
    ("op", "value", "value_two"),
    [("SCMP_CMP_NE", 2, 0), ("SCMP_CMP_LT", 2, 0), ("SCMP_CMP_LE", 2, 0), ("SCMP_CMP_EQ", 2, 0),
     ("SCMP_CMP_GE", 2, 0), ("SCMP_CMP_GT", 2, 0), ("SCMP_CMP_MASKED_EQ", 2, 2), ("SCMP_CMP_EQ", 1 << 40, 0)],
)  # fmt: skip
def test_filter_allows_agrees_with_the_kernel(op, value, value_two):
    """The same libseccomp programs as above, asked of the interpreter and of
    the kernel (a loaded filter): the verdicts must be the same, call by call."""
    section = profile(rule([PROBE], args=[{"index": 0, "value": value, "valueTwo": value_two, "op": op}]))
    kernel = run_confined(section, POLICIES)[1]
    flt = seccomp.compile_filter(section)
    assert [flt.allows(NR_SCHED_GET_PRIORITY_MAX, (p,)) for p in POLICIES] == [e == OK for e in kernel]
    # 64 bits: the high word decides too (a denying rule matches: NE, GE, GT of 2)
    assert flt.allows(NR_SCHED_GET_PRIORITY_MAX, ((1 << 40) | 1,)) is (op not in ("SCMP_CMP_NE", "SCMP_CMP_GE",
                                                                             "SCMP_CMP_GT"))  # fmt: skip


def test_filter_allows_the_trampolines_calls_only_where_the_profile_does():
    from inclavare.runtime.process import execerr

    deny_mkdir = seccomp.compile_filter(profile(rule(["mkdir"])))
    assert execerr.trampoline_can_report(deny_mkdir, 5)
    only_exec = seccomp.compile_filter(
        profile(rule(["execve", "exit_group"], "SCMP_ACT_ALLOW"), default="SCMP_ACT_ERRNO")
    )
    assert not execerr.trampoline_can_report(only_exec, 5)
    fcntl_on_3 = profile(rule(["execve", "prctl"], "SCMP_ACT_ALLOW"),
                         rule(["fcntl"], "SCMP_ACT_ALLOW", args=[{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]),
                         default="SCMP_ACT_KILL")  # fmt: skip
    assert execerr.trampoline_can_report(seccomp.compile_filter(fcntl_on_3), 3)
    assert not execerr.trampoline_can_report(seccomp.compile_filter(fcntl_on_3), 4)
    assert execerr.trampoline_can_report(None, 4)


def test_evaluate_refuses_to_guess_on_unknown_instructions():
    div_then_allow = bytes.fromhex("3400000002000000060000000000ff7f")  # BPF_ALU|BPF_DIV|BPF_K, RET ALLOW
    assert sc.evaluate(div_then_allow, 0) is None
    assert sc.evaluate(bytes.fromhex("060000000000ff7f"), 0) == sc.SCMP_ACT_ALLOW
    assert sc.evaluate(bytes.fromhex("2000000040000000060000000000ff7f"), 0) is None  # load past seccomp_data
