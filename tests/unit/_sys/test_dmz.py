"""The rune-dmz trampoline (_sys/dmz.py) run for real: exec, refusal, and the errno report."""

from __future__ import annotations

import os

import pytest

from inclavare._sys import dmz

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="rune-dmz is x86-64 code")


def trampoline(argv: list[str], report: bool = True) -> tuple[int, bytes, bytes, int]:
    """Exec the sealed trampoline in a child ("{fd}" in argv: the report fd);
    (exit status, report bytes, stdout, the report fd's number)."""
    fd = dmz.sealed_fd()
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(out_w, 1)
            os.set_inheritable(w, report)
            os.execve(f"/proc/self/fd/{fd}", [a.replace("{fd}", str(w)) for a in argv], {"PATH": "/usr/bin:/bin"})
        finally:
            os._exit(99)
    os.close(fd)
    os.close(w)
    os.close(out_w)
    got = b"".join(iter(lambda: os.read(r, 4096), b""))
    out = b"".join(iter(lambda: os.read(out_r, 4096), b""))
    os.close(r)
    os.close(out_r)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), got, out, w


def test_execs_and_the_report_fd_does_not_cross_the_final_execve(tmp_path):
    status, report, out, fd = trampoline(["rune-dmz", "{fd}", "/bin/sh", "sh", "-c", "ls /proc/self/fd; echo ran"])
    fds = out.decode().split()
    assert (status, report, fds[-1]) == (0, b"", "ran")
    assert str(fd) not in fds[:-1]  # made close-on-exec by the trampoline; EOF told the reader it ran


def test_failed_execve_writes_the_errno(tmp_path):
    junk = tmp_path / "junk"
    junk.write_text("no #! line\n")
    junk.chmod(0o755)
    assert trampoline(["rune-dmz", "{fd}", str(junk), "junk"])[:2] == (127, (8).to_bytes(4, "little"))  # ENOEXEC
    assert trampoline(["rune-dmz", "{fd}", str(tmp_path / "none"), "x"])[:2] == (127, (2).to_bytes(4, "little"))
    assert trampoline(["rune-dmz", "-", str(junk), "junk"], report=False)[:2] == (127, b"")


def test_refuses_without_its_magic_name():
    assert trampoline(["/proc/self/exe", "{fd}", "/bin/true", "true"])[:2] == (126, b"")


def test_argv_for():
    assert dmz.argv_for("/bin/sh", ["sh", "-c", "x"], 7) == ["rune-dmz", "7", "/bin/sh", "sh", "-c", "x"]
    assert dmz.argv_for("/bin/sh", ["sh"]) == ["rune-dmz", "-", "/bin/sh", "sh"]
