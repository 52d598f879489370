"""How a `rune` launcher ends: the text both launcher writers use.

tools/mklauncher.py (build/rune) and ``inclavare node install``
(carrier/node.py) write small scripts that run ``main()`` with ``-I -S``.
A short-lived command's exit is its output flushed, then _exit(2) without
the interpreter's finalisation (freeing every module, object by object:
~5 ms of a `rune` command, as long as its work). rune writes its state with
os.write and closes what it opens; stdio is all that can hold buffered
bytes. A flush that fails (EPIPE), or a thread still running, takes the
ordinary exit path, which reports and waits as usual. A long-running daemon
(the shim) keeps the ordinary exit: :data:`ORDINARY_EXIT`.
"""

from __future__ import annotations

FAST_EXIT = """code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BaseException:
    sys.exit(code)
if "threading" in sys.modules and sys.modules["threading"].active_count() > 1:
    sys.exit(code)
import os
os._exit(code)
"""
ORDINARY_EXIT = "sys.exit(main())\n"
