"""`inclavare node install|uninstall`: rune, the shim and the tool on a Kubernetes node.

install, in order (each step undone if a later one fails):

1. a virtual environment at ``PREFIX/lib/inclavare/venv`` with the project
   installed into it by ``pip install`` (not editable: nothing refers back
   to the source checkout or wheel it came from), with the extras a node
   needs (``wasm``: the wasm runtime; ``kbs``: secret provisioning at launch;
   ``shim``: the shim's protobuf; ``epm``: the carriers' bundle caches, `inclavare epm serve`);
2. launchers in ``PREFIX/bin``: ``rune``, ``containerd-shim-rune-v2`` and
   ``inclavare``, each running the venv's interpreter with ``-I -S`` (no
   site processing, as build/rune: docs/architecture.md, "Start-up") on the
   module that is the command (the shim's is :data:`SHIM_MODULE`);
3. the ``rune`` runtime entry in containerd's config.toml (:mod:`.containerd`).

What was done is recorded in ``PREFIX/lib/inclavare/install.json``; uninstall
removes exactly that: the launchers (only files that carry our marker
line), the venv, the block in containerd's file (the file itself if install
created it), the record. A file already at a launcher's path that is not
ours is refused, never replaced. containerd reads its configuration at
start: restart it after either command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

from .._launcher import FAST_EXIT
from . import containerd
from .errors import InstallError

SHIM_MODULE = "inclavare.cli.shim"  # containerd-shim-rune-v2's command line: its main()
SHIM_NAME = "containerd-shim-rune-v2"
MARKER = "# installed by `inclavare node install`; `inclavare node uninstall` removes it"
EXTRAS = ("wasm", "kbs", "shim", "epm")  # those the project declares are installed
_NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")
_COMMANDS = {
    "rune": f"from inclavare.cli.rune._main import main\n{FAST_EXIT}",  # as build/rune (_launcher.py)
    SHIM_NAME: f"import importlib.util\nif importlib.util.find_spec({SHIM_MODULE!r}) is None:\n"
    f"    sys.exit('{SHIM_NAME}: {SHIM_MODULE} is not part of this installation')\n"
    f"from {SHIM_MODULE} import main\nsys.exit(main())",
    "inclavare": "from inclavare.cli.tool._main import main\nsys.exit(main())",
}
RUNTIME_CLASS = """apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: rune
handler: rune   # the runtime entry in containerd's config.toml (io.containerd.rune.v2)
"""


def home(prefix: str) -> str:
    return os.path.join(prefix, "lib", "inclavare")


def install(prefix: str, containerd_config: str, source: str | None = None) -> list[str]:
    """Install (see the module docstring); returns what was done, one line each."""
    prefix = os.path.abspath(prefix)
    record_path = os.path.join(home(prefix), "install.json")
    if os.path.exists(record_path):
        raise InstallError(record_path, "already installed under this prefix (inclavare node uninstall first)")
    source = _source(source)
    launchers = [os.path.join(prefix, "bin", name) for name in _COMMANDS]
    for path in launchers:
        if os.path.lexists(path):
            raise InstallError(path, "exists and was not installed by inclavare node install: not replacing it")
    done: list[str] = []
    venv = os.path.join(home(prefix), "venv")
    directories: list[str] = []  # those install creates, parents first
    for wanted in (os.path.dirname(os.path.abspath(containerd_config)), os.path.join(prefix, "bin"), home(prefix)):
        directories += [d for d in _missing(wanted) if d not in directories]
    try:
        _make_venv(venv, source)
        done.append(f"venv {venv} (pip install {source})")
        site = _site_paths(venv)
        for path in launchers:
            _write_launcher(path, venv, site, _COMMANDS[os.path.basename(path)])
            done.append(f"launcher {path}")
        created = not os.path.exists(containerd_config)
        old = "" if created else _read(containerd_config)
        _write_config(containerd_config, containerd.add_runtime(old, os.path.join(prefix, "bin", SHIM_NAME),
                                                               containerd_config))  # fmt: skip
        done.append(f"containerd runtime {containerd.HANDLER!r} in {containerd_config}")
    except BaseException:
        _undo(launchers, venv, directories)
        raise
    record = {"launchers": launchers, "venv": venv, "containerd_config": containerd_config, "created_config": created,
              "directories": directories}  # fmt: skip
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    return done


def uninstall(prefix: str, containerd_config: str | None = None) -> list[str]:
    """Remove what :func:`install` recorded under `prefix`; returns what was removed, one line each."""
    prefix = os.path.abspath(prefix)
    record_path = os.path.join(home(prefix), "install.json")
    try:
        with open(record_path) as f:
            record = json.load(f)
    except FileNotFoundError:
        raise InstallError(record_path, "nothing installed under this prefix") from None
    except (OSError, ValueError) as exc:
        raise InstallError(record_path, f"unreadable install record: {exc}") from None
    done = []
    config = containerd_config or record["containerd_config"]
    if os.path.exists(config):
        text = _read(config)
        rest = containerd.remove_runtime(text)
        if record.get("created_config") and rest == containerd.NEW_FILE:
            os.unlink(config)
            done.append(f"removed {config} (install created it)")
        elif rest != text:
            _write_config(config, rest)
            done.append(f"removed the {containerd.HANDLER!r} runtime from {config}")
    os.unlink(record_path)
    return done + _undo(record["launchers"], record["venv"], record.get("directories", []))


def _undo(launchers: list[str], venv: str, directories: list[str]) -> list[str]:
    """Remove our launchers, the venv, and the directories install created if they are empty."""
    done = []
    for path in launchers:
        try:
            with open(path) as f:
                ours = MARKER in f.read(4096)
        except OSError:
            continue
        if ours:
            os.unlink(path)
            done.append(f"removed {path}")
    if os.path.isdir(venv):
        shutil.rmtree(venv)
        done.append(f"removed {venv}")
    for directory in reversed(directories):
        try:
            os.rmdir(directory)
            done.append(f"removed {directory}/")
        except OSError:
            pass  # something else was put there since: not ours to remove
    return done


def _source(source: str | None) -> str:
    """The project to pip install: `source`, or the checkout this code runs from."""
    if source is not None:
        if not os.path.exists(source):
            raise InstallError(source, "no such file or directory")
        return os.path.abspath(source)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        with open(os.path.join(root, "pyproject.toml"), "rb") as f:
            name = tomllib.load(f).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        name = None
    if name != "inclavare":
        raise InstallError("--source", "not running from a source checkout: name the project directory or a wheel")
    return root


def _make_venv(venv: str, source: str) -> None:
    _run([sys.executable, "-m", "venv", "--clear", venv], "python -m venv")
    extras = _extras(source)
    with tempfile.TemporaryDirectory(prefix="inclavare-install-") as scratch:
        if os.path.isdir(source):
            # pip builds a directory in place (setuptools' build/ and *.egg-info), and a
            # build/lib left from an older tree would put deleted modules in the wheel:
            # build from a clean copy of the sources instead.
            copy = os.path.join(scratch, "src")
            shutil.copytree(source, copy, symlinks=True, ignore=_NOT_SOURCES)
            source = copy
        target = f"{source}[{','.join(extras)}]" if extras else source
        _run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet", "--no-warn-script-location",
              target], "pip install")  # fmt: skip


def _extras(source: str) -> list[str]:
    """The node extras the project declares (a wheel is asked for all of them; pip warns about the rest)."""
    if not os.path.isdir(source):
        return list(EXTRAS)
    with open(os.path.join(source, "pyproject.toml"), "rb") as f:
        declared = tomllib.load(f).get("project", {}).get("optional-dependencies", {})
    return [e for e in EXTRAS if e in declared]


def _site_paths(venv: str) -> list[str]:
    code = "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])"
    out = _run([os.path.join(venv, "bin", "python"), "-c", code], "python -c sysconfig")
    return list(dict.fromkeys(out.split()))


def _write_launcher(path: str, venv: str, site: list[str], body: str) -> None:
    text = (f"#!{os.path.join(venv, 'bin', 'python')} -IS\n{MARKER}\n"
            f"import sys\nsys.path += {site!r}  # after the standard library, as build/rune\n{body}\n")  # fmt: skip
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _write_config(path: str, text: str) -> None:
    """Replace containerd's file atomically, keeping its mode and owner (0644 root for a new one)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(path)
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        mode, uid, gid = 0o644, os.geteuid(), os.getegid()
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config.toml.")
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), mode)
            os.fchown(f.fileno(), uid, gid)
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise InstallError(path, exc.strerror or str(exc)) from None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(path, getattr(exc, "strerror", None) or str(exc)) from None


def _run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InstallError(what, f"exited {proc.returncode}: {last}")
    return proc.stdout


def _missing(path: str) -> list[str]:
    """`path` and its ancestors that do not exist yet, the outermost first."""
    missing = []
    while not os.path.isdir(path) and path != os.path.dirname(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing[::-1]
