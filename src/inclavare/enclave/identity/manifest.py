"""The enclave manifest (TOML) of the built-in runtimes, parsed with located errors.

The manifest says what an enclave *is*: which runtime runs it, what it
executes, with which arguments and environment, which files it may read
(hash-pinned ``trusted_files``, unchecked ``allowed_files``), how much
memory it gets, and its product id / SVN / debug flag (the SIGSTRUCT fields
of an SGX enclave). It plays the part of Gramine's ``.manifest``::

    runtime = "native"                 # "native" | "wasm"
    entrypoint = "/bin/app"            # native only; must be a trusted file
    memory_limit = "256M"              # bytes, or a K/M/G/T size (default 256M)
    isv_prod_id = 1                    # uint16 (default 0)
    isv_svn = 3                        # uint16 (default 0)
    debug = false                      # default false
    allowed_files = ["/var/log/app.log"]
    trusted_files = ["/lib/ld-musl-x86_64.so.1"]   # a bare path = template entry
    [[trusted_files]]
    path = "/bin/app"
    sha256 = "9f86d0...0a08"           # pinned; `expand` fills missing hashes
    [argv]
    policy = "fixed"                   # "fixed" | "host" (argv comes from the container)
    values = ["/bin/app", "--serve"]   # fixed only; default [entrypoint]
    [env]
    passthrough = ["TZ"]               # names taken from the container's env
    fixed = { LANG = "C" }             # names with a measured value
    [wasm]                             # wasm only
    module = "/app/main.wasm"          # path in the rootfs
    module_sha256 = "..."              # pinned like a trusted file
    max_memory_pages = 256             # 64 KiB pages; default: memory_limit / 64 KiB
    fuel = 100000000                   # optional: instructions budget
    epoch_deadline = 10                # optional: epoch ticks before interruption
    preopened_dirs = [{ guest = "/data", path = "/srv/data", read_only = true }]
    [kbs]                              # optional: the key broker(s) this enclave trusts
    urls = ["https://kbs.example:8443"]
    cacert = "/app/kbs-ca.pem"         # a trusted file; and/or pin_sha256 = ["<base64>"]

A *template* leaves some hashes out; :func:`~.expand.expand_trusted_files`
fills them in from a rootfs, as ``gramine-manifest`` / ``gramine-sgx-sign``
do. Unknown keys are errors: a misspelt security setting must not vanish.
"""

from __future__ import annotations

import dataclasses
import tomllib

from ._fields import Table, check_string, rootfs_path
from .broker import BrokerPin, parse_broker
from .errors import ManifestError

RUNTIMES = ("native", "wasm")
ARGV_POLICIES = ("fixed", "host")
WASM_PAGE = 64 << 10  # WebAssembly linear-memory page size (wasm core spec §4.2.8)
_MAX_MANIFEST = 1 << 20
_TOP = (
    *("runtime", "entrypoint", "memory_limit", "isv_prod_id", "isv_svn", "debug"),
    *("allowed_files", "trusted_files", "argv", "env", "wasm", "kbs"),
)


@dataclasses.dataclass(frozen=True)
class TrustedFile:
    path: str
    sha256: bytes | None  # None in a template, until expanded


@dataclasses.dataclass(frozen=True)
class PreopenedDir:
    guest: str  # the directory as the module sees it
    path: str  # the directory in the rootfs
    read_only: bool


@dataclasses.dataclass(frozen=True)
class WasmSettings:
    module: str
    module_sha256: bytes | None
    max_memory_pages: int
    fuel: int | None
    epoch_deadline: int | None
    preopened_dirs: tuple[PreopenedDir, ...]


@dataclasses.dataclass(frozen=True)
class Manifest:
    file: str  # where it came from; used in error messages only, never measured
    runtime: str
    entrypoint: str | None
    memory_limit: int
    isv_prod_id: int
    isv_svn: int
    debug: bool
    argv_policy: str
    argv: tuple[str, ...]
    env_fixed: tuple[tuple[str, str], ...]  # sorted by name
    env_passthrough: tuple[str, ...]  # sorted
    trusted_files: tuple[TrustedFile, ...]  # in manifest order (errors cite indices)
    allowed_files: tuple[str, ...]  # sorted
    wasm: WasmSettings | None
    kbs: BrokerPin | None = None  # the key broker(s) it trusts (broker.py)

    @property
    def is_template(self) -> bool:
        """True while some trusted hash (or the wasm module hash) is not pinned."""
        unpinned = any(t.sha256 is None for t in self.trusted_files)
        return unpinned or (self.wasm is not None and self.wasm.module_sha256 is None)


def load_manifest(path: str) -> Manifest:
    """Read and parse the manifest at `path` (errors name `path`)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_MANIFEST + 1)
    except OSError as exc:
        raise ManifestError(path, "", exc.strerror or "cannot read") from None
    if len(raw) > _MAX_MANIFEST:
        raise ManifestError(path, "", "larger than 1 MiB")
    return parse_manifest(raw, path)


def parse_manifest(raw: bytes | str, file: str = "enclave.manifest.toml") -> Manifest:
    """Parse manifest text; every problem is one :class:`ManifestError`."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ManifestError(file, "", "not UTF-8") from None
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
        raise ManifestError(file, "", f"malformed TOML: {str(exc).splitlines()[0] if str(exc) else 'error'}") from None
    top = Table(file, "", doc)
    top.reject_unknown(_TOP)
    runtime = top.string("runtime")
    if runtime not in RUNTIMES:
        raise top.error("runtime", f'must be "native" or "wasm", not {runtime!r}')
    memory_limit = top.size("memory_limit", 256 << 20)
    entrypoint, wasm = _program(top, runtime, memory_limit)
    trusted = _trusted_files(top)
    if entrypoint is not None and entrypoint not in {t.path for t in trusted}:
        raise top.error("entrypoint", f"{entrypoint} is not listed in trusted_files")
    policy, argv = _argv(top, entrypoint or (wasm.module if wasm else ""))
    fixed, passthrough = _env(top)
    return Manifest(
        file=file,
        runtime=runtime,
        entrypoint=entrypoint,
        memory_limit=memory_limit,
        isv_prod_id=top.integer("isv_prod_id", 0, 0xFFFF, 0),
        isv_svn=top.integer("isv_svn", 0, 0xFFFF, 0),
        debug=top.boolean("debug", False),
        argv_policy=policy,
        argv=argv,
        env_fixed=fixed,
        env_passthrough=passthrough,
        trusted_files=trusted,
        allowed_files=_allowed_files(top, trusted),
        wasm=wasm,
        kbs=parse_broker(top, {t.path for t in trusted}),
    )


def _program(top: Table, runtime: str, memory_limit: int) -> tuple[str | None, WasmSettings | None]:
    if runtime == "native":
        if top.has("wasm"):
            raise top.error("wasm", 'only allowed with runtime = "wasm"')
        return rootfs_path(top, "entrypoint", top.string("entrypoint")), None
    if top.has("entrypoint"):
        raise top.error("entrypoint", 'only allowed with runtime = "native" (wasm uses wasm.module)')
    table = top.sub("wasm")
    if table is None:
        raise top.error("wasm", 'is required with runtime = "wasm"')
    return None, _wasm(table, memory_limit)


def _wasm(table: Table, memory_limit: int) -> WasmSettings:
    table.reject_unknown(("module", "module_sha256", "max_memory_pages", "fuel", "epoch_deadline", "preopened_dirs"))
    pages_cap = min(65536, memory_limit // WASM_PAGE)  # 65536 pages = the 4 GiB wasm32 address space
    if pages_cap < 1:
        raise table.error("", "memory_limit is smaller than one 64 KiB wasm page")
    dirs = []
    for i, item in enumerate(table.array("preopened_dirs")):
        entry = Table(table.file, table.at(f"preopened_dirs[{i}]"), item)
        entry.reject_unknown(("guest", "path", "read_only"))
        guest = rootfs_path(entry, "guest", entry.string("guest"))
        dirs.append(
            PreopenedDir(guest, rootfs_path(entry, "path", entry.string("path")), entry.boolean("read_only", True))
        )
    guests = [d.guest for d in dirs]
    if len(set(guests)) != len(guests):
        raise table.error("preopened_dirs", "the same guest directory is listed twice")
    return WasmSettings(
        module=rootfs_path(table, "module", table.string("module")),
        module_sha256=table.sha256("module_sha256"),
        max_memory_pages=table.integer("max_memory_pages", 1, pages_cap, pages_cap),
        fuel=table.optional_integer("fuel", 1, (1 << 63) - 1),
        epoch_deadline=table.optional_integer("epoch_deadline", 1, (1 << 63) - 1),
        preopened_dirs=tuple(sorted(dirs, key=lambda d: d.guest.encode())),
    )


def _trusted_files(top: Table) -> tuple[TrustedFile, ...]:
    files: list[TrustedFile] = []
    seen: set[str] = set()
    for i, item in enumerate(top.array("trusted_files")):
        key = f"trusted_files[{i}]"
        if isinstance(item, str):
            entry = TrustedFile(rootfs_path(top, key, item), None)
        else:
            table = Table(top.file, top.at(key), item)
            table.reject_unknown(("path", "sha256"))
            entry = TrustedFile(rootfs_path(table, "path", table.string("path")), table.sha256("sha256"))
        if entry.path in seen:
            raise top.error(key, f"{entry.path} is listed twice")
        seen.add(entry.path)
        files.append(entry)
    return tuple(files)


def _allowed_files(top: Table, trusted: tuple[TrustedFile, ...]) -> tuple[str, ...]:
    paths = [rootfs_path(top, f"allowed_files[{i}]", p) for i, p in enumerate(top.strings("allowed_files"))]
    pinned = {t.path for t in trusted}
    for i, path in enumerate(paths):
        if path in pinned:  # one file cannot be both hash-checked and unchecked
            raise top.error(f"allowed_files[{i}]", f"{path} is also a trusted file")
    return tuple(sorted(set(paths), key=str.encode))


def _argv(top: Table, program: str) -> tuple[str, tuple[str, ...]]:
    table = top.sub("argv")
    if table is None:
        return "fixed", (program,)
    table.reject_unknown(("policy", "values"))
    policy = table.string("policy", "fixed")
    if policy not in ARGV_POLICIES:
        raise table.error("policy", f'must be "fixed" or "host", not {policy!r}')
    if policy == "host":
        if table.has("values"):
            raise table.error("values", 'not allowed with policy = "host"')
        return policy, ()
    values = tuple(table.strings("values")) if table.has("values") else (program,)
    if not values:
        raise table.error("values", "must not be empty")
    return policy, values


def _env(top: Table) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    table = top.sub("env")
    if table is None:
        return (), ()
    table.reject_unknown(("fixed", "passthrough"))
    passthrough = [_env_name(table, f"passthrough[{i}]", n) for i, n in enumerate(table.strings("passthrough"))]
    fixed_table = table.sub("fixed") or Table(table.file, table.at("fixed"), {})
    fixed = {}
    for name, value in fixed_table.data.items():
        _env_name(fixed_table, name, name)
        fixed[name] = check_string(fixed_table, name, value)
        if name in passthrough:
            raise fixed_table.error(name, "is also in env.passthrough")
    return tuple(sorted(fixed.items(), key=lambda kv: kv[0].encode())), tuple(sorted(set(passthrough), key=str.encode))


def _env_name(table: Table, key: str, name: str) -> str:
    if not name or "=" in name or "\0" in name:
        raise table.error(key, f"{name!r} is not a valid environment variable name")
    return name
