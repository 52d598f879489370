"""`rune`: the OCI runtime command line (a drop-in for runc's).

This module is the only place that turns exceptions into an exit status and
an error line: with ``--log`` the line goes to the log file (JSON for
containerd) and the bare message to stderr, as runc does; otherwise the
formatted line goes to stderr. Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import os
import sys

from ... import OCI_VERSION, __version__
from ...errors import InclavareError, UsageError
from ._args import Flag, Flags, parse, table, usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...log import Logger

# subcommand -> module under inclavare.cli.rune, imported only when used.
COMMANDS = {
    "create": "create", "start": "start", "exec": "exec", "run": "run", "state": "state", "kill": "kill",
    "delete": "delete", "list": "list_", "ps": "ps", "pause": "pause", "resume": "resume", "attest": "attest",
    "update": "update", "events": "events", "spec": "spec", "features": "features",
}  # fmt: skip


class GlobalFlags(Flags):
    FLAGS = (
        Flag("root", "str", "", "root directory for storage of container state "
             "(default /run/rune, or $XDG_RUNTIME_DIR/rune when not root)"),
        Flag("log", "str", "", "set the log file to write rune logs to (default is stderr)"),
        Flag("log-format", "str", "text", "set the log format ('text' (default), or 'json')"),
        Flag("debug", help="enable debug logging"),
        Flag("systemd-cgroup", help="use systemd-style cgroupsPath (slice:prefix:name)"),
        Flag("rootless", "str", "auto", "ignore cgroup permission errors ('true', 'false', or 'auto')"),
        Flag("criu", "str", "criu", "path to the criu binary (checkpointing is not supported)"),
        Flag("config", "str", "", "the node's rune configuration (default /etc/inclavare/rune.toml, if it exists)"),
        Flag("enclave-required", help="refuse containers that ask for no enclave (the Kubernetes sandbox excepted)"),
        Flag("version, v", help="print the version"),
    )  # fmt: skip
    __slots__ = ("config", "criu", "debug", "enclave_required", "log", "log_format", "root", "rootless",
                 "systemd_cgroup", "version")  # fmt: skip
    root: str
    log: str
    log_format: str
    debug: bool
    systemd_cgroup: bool
    rootless: str
    criu: str
    config: str
    enclave_required: bool
    version: bool


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log: Logger | None = None
    debug = "--debug" in argv  # known before parsing, for errors in parsing itself
    try:
        opts, rest = parse(argv, GlobalFlags)
        debug = opts.debug
        log = _logger(opts)
        return _dispatch(opts, rest, log)
    except InclavareError as exc:
        return _fail(log, str(exc), exc.exit_code, debug)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _fail(log, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1, debug)
    except Exception as exc:  # a bug in rune: still one line (the traceback with --debug)
        return _fail(log, f"internal error: {type(exc).__name__}: {exc}", 1, debug)


def _logger(opts: GlobalFlags) -> Logger:
    from ...log import Logger

    if opts.log_format not in ("text", "json"):
        raise UsageError(f"unknown log-format {opts.log_format!r}")
    return Logger(opts.log or None, opts.log_format, opts.debug)


def _dispatch(opts: GlobalFlags, rest: list[str], log: Logger | None) -> int:
    if opts.version:
        sys.stdout.write(f"rune version {__version__}\nspec: {OCI_VERSION}\n")
        return 0
    if not rest or opts.help:
        sys.stdout.write(
            "rune - an OCI runtime with enclave support\n\n"
            + usage("", "[global options] command [command options] [arguments...]", table(GlobalFlags))
        )
        sys.stdout.write("COMMANDS:\n   " + " ".join(sorted(COMMANDS)) + "\n")
        return 0
    name, args = rest[0], rest[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"No help topic for '{name}'\n")
        return 3
    module = f"inclavare.cli.rune.{COMMANDS[name]}"
    __import__(module)  # not importlib.import_module: importlib imports warnings, ~0.4 ms of every command
    mod = sys.modules[module]
    kind: type[Flags] = mod.Flags
    try:
        cmd_opts, cmd_args = parse(args, kind)
    except UsageError as exc:
        sys.stderr.write(f"Incorrect Usage: {exc}\n\n" + usage(name, mod.SYNOPSIS, table(kind)))
        raise
    if cmd_opts.help:
        sys.stdout.write(usage(name, mod.SYNOPSIS, table(kind)))
        return 0
    lo, hi = mod.NARGS
    if not lo <= len(cmd_args) <= (hi if hi >= 0 else len(cmd_args)):
        raise UsageError(f"rune: {name!r} {_nargs_text(lo, hi)}")
    from ...runtime.context import RuntimeContext

    rootless = opts.rootless == "true" or (opts.rootless == "auto" and os.geteuid() != 0)
    root = opts.root or default_root()
    ctx = RuntimeContext(root, opts.systemd_cgroup, opts.debug, log, rootless, opts.config or None,
                         opts.enclave_required)  # fmt: skip
    return int(mod.main(ctx, cmd_opts, cmd_args) or 0)


def default_root() -> str:
    """runc's default: /run/<runtime> for root, $XDG_RUNTIME_DIR/<runtime> otherwise."""
    if os.geteuid() == 0:
        return "/run/rune"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/rune-{os.geteuid()}"
    return os.path.join(runtime_dir, "rune")


def _nargs_text(lo: int, hi: int) -> str:
    if lo == hi:
        return f"requires exactly {lo} argument(s)"
    if hi < 0:
        return f"requires a minimum of {lo} argument(s)"
    return f"requires between {lo} and {hi} argument(s)"


def _fail(log: Logger | None, msg: str, code: int, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    if log is not None and log.to_file:
        log.error(msg)
        sys.stderr.write(msg + "\n")
    elif log is not None:
        log.error(msg)
    else:
        sys.stderr.write(f"rune: {msg}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
