"""What every ``inclavare`` tool shares: its argument parser, how errors leave, the enclave flags.

The tools (``inclavare <group>``, dispatched by :mod:`._main`, and
``inclavare-keyprovider``) fail as rune does (``cli/rune/_main.py``,
docs/principles.md §2): one line on stderr, ``<tool>: <what went wrong>``,
and the error's exit status (1 for every :class:`~inclavare.errors.InclavareError`,
as runc). A mistake on the command line is the same one line, naming the
subcommand (``inclavare enclave: sign: the following arguments are required:
--rootfs``), not argparse's usage text and status 2. An OSError names its
file; anything unexpected is ``internal error: ...``, still one line.
``--debug`` adds the traceback; Ctrl-C exits 130 (128 + SIGINT, as a shell
reports it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from ...errors import InclavareError, UsageError

if TYPE_CHECKING:
    from ...attestation.attesters.software import SoftwareAttester


class CommandLineError(UsageError):
    """argparse refused the command line; ``prog`` is the (sub)command whose arguments are wrong."""

    def __init__(self, prog: str, reason: str) -> None:
        self.prog = prog
        self.reason = reason
        super().__init__(f"{prog}: {reason}")


class Parser(argparse.ArgumentParser):
    """argparse whose errors are exceptions (:class:`CommandLineError`), for :func:`run` to print.

    Subcommand parsers are of the same class (argparse makes them of
    ``type(self)``), so a mistake anywhere in the tree is reported alike.
    """

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(self.prog, message)


def run(tool: str, main: Callable[[list[str]], int | None], argv: list[str], *, debug: bool = False) -> int:
    """``main(argv)``'s exit status; whatever it raises becomes one line ``tool: ...`` on stderr."""
    try:
        return int(main(argv) or 0)
    except SystemExit as exc:  # argparse's --help, after printing the help
        return exc.code if isinstance(exc.code, int) else 0
    except CommandLineError as exc:
        where = exc.prog.removeprefix(tool).strip()
        return _fail(tool, f"{where}: {exc.reason}" if where else exc.reason, exc.exit_code, debug)
    except InclavareError as exc:
        return _fail(tool, str(exc), exc.exit_code, debug)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _fail(tool, f"{str(exc.filename) + ': ' if exc.filename else ''}{exc.strerror or exc}", 1, debug)
    except Exception as exc:  # a bug: still one line (the traceback with --debug)
        return _fail(tool, f"internal error: {type(exc).__name__}: {exc}", 1, debug)


def _fail(tool: str, message: str, code: int, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    sys.stderr.write(f"{tool}: {message}\n")
    return code


def read_file(path: str, limit: int = -1) -> bytes:
    """A file named on the command line (``-`` is stdin), at most ``limit`` bytes.

    An OSError is left to :func:`run`, which prints it naming the file.
    """
    if path == "-":
        return sys.stdin.buffer.read(limit)
    with open(path, "rb") as f:
        return f.read(limit)


def instant(text: str, option: str) -> datetime:
    """The RFC 3339 time given to ``option`` (``2027-01-01T00:00:00Z``); a time zone is required."""
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not an RFC 3339 time like 2027-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise UsageError(f"{option}: {text!r} needs a time zone (Z or +hh:mm)")
    return value


def enclave_attester(manifest: str, sig: str | None, rootfs: str, host_key: str | None) -> SoftwareAttester:
    """The software attester for a signed enclave, from the flags kbs-client, ratls and the key provider share.

    The identity is the one the signature proves once verified (never one
    taken from flags); ``sig`` defaults to ``MANIFEST.sig`` and ``host_key``
    to the host's software-TEE key file, which is read (or created) only
    after the enclave verified.
    """
    from ...attestation.attesters.software import SoftwareAttester
    from ...enclave.identity import HostKey, verify_signature

    identity = verify_signature(manifest, sig or manifest + ".sig", rootfs)
    key = HostKey.load_or_create(host_key) if host_key else HostKey.load_or_create()
    return SoftwareAttester(identity, key)
