"""The subreaper: statuses of commands and of orphans, and subprocess left alone while foreign children run.

Each test runs in a fresh interpreter: a waitpid(-1) loop inside pytest's
own process would reap the children of everything else the test run starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

PRELUDE = """
import os, signal, subprocess, sys, threading, time
sys.path.insert(0, {!r})
from inclavare.shim.reaper import Reaper

exits = []
reaper = Reaper(lambda pid, status: exits.append((pid, status)))
stop = threading.Event()
def loop():  # the shim's main thread does this on SIGCHLD
    while not stop.is_set():
        reaper.reap()
        time.sleep(0.005)
threading.Thread(target=loop, daemon=True).start()
null = os.open(os.devnull, os.O_RDWR)
""".format(os.path.join(ROOT, "src"))


def run(body: str) -> str:
    script = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_command_statuses_exit_code_and_signal():
    out = run("""
        a = reaper.spawn(["sh", "-c", "exit 7"], null, null, null)
        b = reaper.spawn(["sh", "-c", "kill -TERM $$"], null, null, null)
        print(reaper.wait(a), reaper.wait(b), exits)
    """)
    assert out == "7 143 []"  # 128 + SIGTERM; commands never reach on_exit


def test_wait_with_timeout_and_a_missing_program():
    out = run("""
        pid = reaper.spawn(["sleep", "5"], null, null, null)
        print(reaper.wait(pid, 0.1))
        os.kill(pid, 9)
        print(reaper.wait(pid))
        try:
            reaper.spawn(["/nonexistent/program"], null, null, null)
        except Exception as exc:
            print(type(exc).__name__, exc)
    """)
    assert out.splitlines() == ["None", "137", "InclavareError /nonexistent/program: No such file or directory"]


def test_orphans_of_a_subreaper_reach_on_exit():
    """The container's init is a grandchild: its exit comes to the shim once its parent exits."""
    out = run("""
        from inclavare import _sys
        from inclavare._sys import consts
        _sys.default().prctl(consts.PR_SET_CHILD_SUBREAPER, 1)
        r, w = os.pipe()
        cmd = reaper.spawn(["sh", "-c", "(sleep 0.3; exit 5) & echo $! >&3; exit 0"], null, null, null, extra_fds=(w,))
        os.close(w)
        orphan = int(os.read(r, 100))
        print(reaper.wait(cmd))
        deadline = time.time() + 10
        while not exits and time.time() < deadline:
            time.sleep(0.01)
        print(exits == [(orphan, 5)])
    """)
    assert out.splitlines() == ["0", "True"]


def test_subprocess_statuses_are_right_inside_foreign_children():
    """A carrier may use subprocess; without the guard the loop would steal its exit (status 0)."""
    out = run("""
        with reaper.foreign_children():
            procs = [subprocess.Popen(["sh", "-c", f"exit {n}"]) for n in (3, 4)]
            time.sleep(0.3)  # they exit while nobody waits for them: the loop's waitpid(-1) would win
            cmd = reaper.spawn(["sh", "-c", "exit 9"], null, null, null)
            print([p.wait() for p in procs], reaper.wait(cmd))
    """)
    assert out == "[3, 4] 9"


def test_watch_reaps_a_watched_child_that_already_exited():
    out = run("""
        stop.set(); time.sleep(0.05)  # no loop: only watch() can notice
        with reaper.foreign_children():
            pid = os.posix_spawnp("sh", ["sh", "-c", "exit 6"], os.environ)
            time.sleep(0.2)
            reaper.watch(pid)
        print(exits == [(pid, 6)])
    """)
    assert out == "True"


def test_one_shot_reaper_waits_for_itself():
    """`delete` has no SIGCHLD loop: wait() reaps its own command."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.path.join(ROOT, "src")!r})
        from inclavare.shim.reaper import Reaper
        null = os.open(os.devnull, os.O_RDWR)
        r = Reaper(lambda p, s: None, loop=False)
        pid = r.spawn(["sh", "-c", "sleep 0.2; exit 4"], null, null, null)
        print(r.wait(pid, 0), r.wait(pid))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "None 4"


def test_a_foreign_section_that_opens_while_the_loop_runs_keeps_its_child():
    """The loop found no foreign section, then one opened and its subprocess exited before the loop
    looked at the next child: that child is still subprocess's to reap (status 7, not ECHILD's 0)."""
    out = run("""
        stop.set()  # drive reap() by hand
        time.sleep(0.05)
        first = reaper.spawn(["true"], null, null, null)
        time.sleep(0.2)  # an exited child of ours: the loop starts on it
        real_waitpid, real_waitid, opened = os.waitpid, os.waitid, []
        def open_section():
            if not opened:  # between the loop's first look and its next one
                opened.append(reaper.foreign_children())
                opened[0].__enter__()
                opened.append(subprocess.Popen(["sh", "-c", "exit 7"]))
                time.sleep(0.3)
        def waitpid(pid, flags):
            result = real_waitpid(pid, flags)
            open_section()
            return result
        os.waitpid = waitpid
        reaper.reap()
        os.waitpid = real_waitpid
        print(reaper.wait(first), opened[1].wait())
        opened[0].__exit__(None, None, None)
    """)
    assert out == "0 7"
