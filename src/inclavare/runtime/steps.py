"""Naming the step an OS error escaped from.

containerd shows what the runtime's JSON log says and adds ": unknown": an
OSError that reaches the CLI bare reads ``Permission denied: unknown``, with no
word of where. Every system interaction of a verb runs inside a ``step``: an
OSError leaving it becomes one SyscallError line that says what was being
done, on what, and why, e.g. ``process.oomScoreAdj: writing
/proc/4242/oom_score_adj: Permission denied``. Errors rune raised on purpose
(InclavareError) pass through unchanged: they are located already.
"""

from __future__ import annotations

from ..errors import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType


class step:  # lower case: it reads as a function, `with step("creating exec.fifo"):`
    """``with step(what[, on]):`` — `what` names the step (a config field first
    when one asked for it), `on` the object when the error would not name it."""

    __slots__ = ("on", "what")

    def __init__(self, what: str, on: str = "") -> None:
        self.what = what
        self.on = on

    def __enter__(self) -> step:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(exc, OSError):
            raise located(self.what, exc, self.on) from None


def located(what: str, exc: OSError, on: str = "") -> SyscallError:
    """`exc` as one line: what was done, on which file, and the errno's text."""
    where = on or (str(exc.filename) if exc.filename is not None else "")
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return SyscallError(what, exc.errno or 0, where)
