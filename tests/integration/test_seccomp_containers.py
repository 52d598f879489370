"""linux.seccomp on real containers through build/rune (root, namespaces)."""

from __future__ import annotations

import os
import signal
from errno import ENOSPC

import pytest

from inclavare.testing.bundles import base_config

pytestmark = pytest.mark.root


def config(args: list[str], seccomp: dict, nnp: bool = True) -> dict:
    cfg = base_config(args)
    cfg["linux"]["seccomp"] = seccomp
    cfg["process"]["noNewPrivileges"] = nnp
    # SIGSYS dumps core by default: keep the host's core_pattern out of it.
    cfg["process"]["rlimits"].append({"type": "RLIMIT_CORE", "hard": 0, "soft": 0})
    return cfg


def deny(names: list[str], action: str = "SCMP_ACT_ERRNO", **extra: object) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": names, "action": action, **extra}]}


@pytest.mark.parametrize(
    ("extra", "message"), [({}, "Operation not permitted"), ({"errnoRet": ENOSPC}, "No space left on device")]
)
def test_errno_action_and_errno_ret(rune, bundle, extra, message):
    b = bundle(config(["sh", "-c", "mkdir /dev/shm/d; echo rc=$?; touch /dev/shm/f && echo touched"],
                      deny(["mkdir", "mkdirat"], **extra)))  # fmt: skip
    r = rune("run", "--bundle", b, "e")
    assert (r.returncode, r.stdout) == (0, "rc=1\ntouched\n")
    assert message in r.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"])
def test_kill_action_kills_with_sigsys(rune, bundle, action):
    b = bundle(config(["mkdir", "/dev/shm/d"], deny(["mkdir", "mkdirat"], action)))
    r = rune("run", "--bundle", b, "k")
    assert r.returncode == 128 + signal.SIGSYS, r.stderr


def test_argument_conditions(rune, bundle):
    # chmod(path, mode) / fchmodat(dirfd, path, mode): refuse modes with all of o+rwx
    # (MASKED_EQ) and exactly 0600 or 0700 (two conditions on one argument: either).
    masked = {"op": "SCMP_CMP_MASKED_EQ", "value": 0o7, "valueTwo": 0o7}
    rules = [
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, **masked}]},
        {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, **masked}]},
    ]
    for name, index in (("chmod", 1), ("fchmodat", 2)):
        either = [{"index": index, "op": "SCMP_CMP_EQ", "value": mode} for mode in (0o600, 0o700)]
        rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSPC, "args": either})
    script = "touch /dev/shm/f; for m in 755 707 600 700 640; do chmod $m /dev/shm/f 2>/dev/null; echo $m=$?; done"
    b = bundle(config(["sh", "-c", script], {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}))
    r = rune("run", "--bundle", b, "a")
    assert (r.returncode, r.stdout.split()) == (0, ["755=0", "707=1", "600=1", "700=1", "640=0"]), r.stderr


# What static busybox's `true` itself calls (strace); everything else fails with EPERM.
TRUE_NEEDS = ["arch_prctl", "brk", "mprotect", "set_tid_address", "exit_group"]


def test_default_errno_needs_only_execve(rune, bundle):
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["execve", *TRUE_NEEDS], "action": "SCMP_ACT_ALLOW"}],
    }
    r = rune("run", "--bundle", bundle(config(["true"], profile)), "d")
    assert (r.returncode, r.stderr) == (0, "")


def test_filter_is_active_at_execve(rune, bundle):
    # The same profile without execve: rune's own exec of the workload is refused.
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": [*TRUE_NEEDS, "write"], "action": "SCMP_ACT_ALLOW"}],
    }
    r = rune("run", "--bundle", bundle(config(["true"], profile)), "n")
    assert r.returncode == 1  # runc: the exec error, exit 1
    assert "exec /bin/true: operation not permitted" in r.stderr


def test_filter_without_no_new_privileges(rune, bundle):
    b = bundle(config(["sh", "-c", "mkdir /dev/shm/d; echo rc=$?"], deny(["mkdir", "mkdirat"]), nnp=False))
    r = rune("run", "--bundle", b, "p")
    assert (r.returncode, r.stdout) == (0, "rc=1\n"), r.stderr


def test_exec_gets_the_filter(rune, bundle):
    b = bundle(config(["sleep", "100"], deny(["mkdir", "mkdirat"], errnoRet=ENOSPC)))
    rune("run", "-d", "--bundle", b, "x", check=True)
    r = rune("exec", "x", "sh", "-c", "mkdir /dev/shm/d; echo rc=$?")
    assert (r.returncode, r.stdout) == (0, "rc=1\n")
    assert "No space left on device" in r.stderr


def test_unknown_action_refused_and_nothing_left(rune, bundle, state_root):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}]}
    r = rune("run", "--bundle", bundle(config(["true"], profile)), "u")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1  # one line, no traceback
    assert "linux.seccomp.syscalls[0].action: unknown action" in r.stderr
    assert "SCMP_ACT_EXPLODE" in r.stderr
    assert not os.path.isdir(state_root) or os.listdir(state_root) == []


def test_notify_refused(rune, bundle):
    profile = deny(["mkdir"], "SCMP_ACT_NOTIFY")
    profile["listenerPath"] = "/run/seccomp-agent.sock"
    r = rune("create", "--bundle", bundle(config(["true"], profile)), "n2")
    assert r.returncode == 1
    assert "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported" in r.stderr


# -- runtime-tools' default profile (generate/seccomp/seccomp_default.go, amd64) ----------
RUNTIME_TOOLS_ALLOW_TEXT = """
accept accept4 access alarm bind brk capget capset chdir chmod chown chown32 clock_getres clock_gettime
clock_nanosleep close connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
epoll_ctl_old epoll_pwait epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group
faccessat fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futimesat getcpu getcwd getdents getdents64 getegid
getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
ioprio_get ioprio_set io_setup io_submit ipc kill lchown lchown32 lgetxattr link linkat listen listxattr
llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise memfd_create mincore mkdir mkdirat
mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep
newfstatat _newselect open openat pause pipe pipe2 poll ppoll prctl pread64 preadv prlimit64 pselect6
pwrite64 pwritev read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp
select semctl semget semop semtimedop send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32
setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64 statx symlink
symlinkat sync sync_file_range syncfs sysinfo syslog tee tgkill time timer_create timer_delete
timerfd_create timerfd_gettime timerfd_settime timer_getoverrun timer_gettime timer_settime times tkill
truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4
waitid waitpid write writev
"""
RUNTIME_TOOLS_ALLOW = RUNTIME_TOOLS_ALLOW_TEXT.split()
RUNTIME_TOOLS_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]  # fmt: skip
CLONE_NEW_ANY = 0x7E020000  # CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP


def runtime_tools_profile() -> dict:
    allow = "SCMP_ACT_ALLOW"
    personas = [{"names": ["personality"], "action": allow, "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
                for v in (0x0, 0x0008, 0xFFFFFFFF)]  # fmt: skip
    clone = {"index": 0, "value": CLONE_NEW_ANY, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": RUNTIME_TOOLS_ALLOW, "action": allow, "args": []},
            *personas,
            {"names": ["chroot"], "action": allow, "args": []},  # CAP_SYS_CHROOT
            {"names": ["clone"], "action": allow, "args": [clone]},  # no CAP_SYS_ADMIN
            {"names": ["arch_prctl"], "action": allow, "args": []},
            {"names": ["modify_ldt"], "action": allow, "args": []},
        ],
    }


SHELL_WORK = "echo ok; ls / >/dev/null && cat /etc/passwd | wc -l && (sleep 0; true) && echo done"


def test_runtime_tools_default_profile(rune, bundle):
    r = rune("run", "--bundle", bundle(config(["sh", "-c", SHELL_WORK], runtime_tools_profile())), "rt")
    assert (r.returncode, r.stdout.split()) == (0, ["ok", "2", "done"]), r.stderr


def test_runtime_tools_default_config(rune, bundle):
    # The validation suite's own process settings: its capabilities and no noNewPrivileges.
    cfg = config(["sh", "-c", SHELL_WORK], runtime_tools_profile(), nnp=False)
    cfg["process"]["capabilities"] = {
        k: list(RUNTIME_TOOLS_CAPS) for k in ("bounding", "effective", "inheritable", "permitted", "ambient")
    }
    r = rune("run", "--bundle", bundle(cfg), "rt2")
    assert (r.returncode, r.stdout.split()) == (0, ["ok", "2", "done"]), r.stderr
