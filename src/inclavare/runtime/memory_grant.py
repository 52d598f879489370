"""The enclave memory kubelet granted a container caps its enclave's memory limit.

kubelet hands a container the devices the device plugin allocated it as
environment: N devices of ``inclavare.io/enclave-memory-mib`` become
``ENCLAVE_MEMORY_GRANT_MIB=N`` (src/inclavare/deviceplugin, docs/kubernetes.md,
"Enclave memory"). :func:`bound`, called from the enclave plan
(runtime/enclave_setup.py), makes that number a limit `rune create` enforces,
failing closed:

* the memory the enclave will have is the one its runtime enforces, from the
  signed manifest (docs/builtin-runtimes.md): native, ``memory_limit``
  (RLIMIT_AS); wasm, ``wasm.max_memory_pages`` 64 KiB pages of linear memory;
  either lowered by a ``memory=`` option of ``enclave.runtime.args``;
* more than the grant is refused, one line naming the manifest and both sizes;
* within it, ``memory=<that size>`` replaces any ``memory=`` in the runtime's
  options. The manifest is read here, in the rootfs, before init verifies
  it; the option makes the runtime hold the enclave to the size checked
  here whatever manifest init then loads (options only lower a signed limit,
  so a larger manifest is cut down and a smaller one refused);
* a PAL library or another registered runtime sizes its enclave itself,
  which rune cannot see: a grant for one is refused rather than ignored.

Without the variable nothing changes: an enclave's memory is then bounded by
its manifest and the container's cgroup only.
"""

from __future__ import annotations

from ..errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..enclave.config import EnclaveConfig, Settings
    from ..enclave.identity import Manifest

MIB = 1 << 20
BUILTIN = ("native", "wasm")  # the runtimes whose memory is in a manifest rune can read
_MAX_MANIFEST = 1 << 20


def bound(config: EnclaveConfig, settings: Settings, rootfs: str) -> EnclaveConfig:
    """`config`, its runtime options holding the enclave to its memory grant; refuses an enclave
    that asks for more (see the module docstring). No grant: `config` unchanged."""
    if "memory_grant" not in settings.found:
        return config
    value, source = settings.found["memory_grant"]
    granted = _mib(value, source)
    if config.runtime not in BUILTIN:
        raise SpecError(source, f"{granted} MiB of enclave memory granted, but the enclave runtime "
                        f"{config.runtime!r} sizes its enclave itself: only {' and '.join(BUILTIN)} "
                        "enclaves can be held to a grant")  # fmt: skip
    from ..enclave.config import EnclaveConfig
    from ..enclave.interface import split_args

    words = split_args(config.args)
    manifest, asked = _asked(words, rootfs, config.sources.get("args", "annotations.enclave.runtime.args"))
    if asked > granted * MIB:
        raise SpecError(source, f"the enclave asks for {_size(asked)} ({manifest.file}, {_what(manifest)}), "
                        f"more than the {granted} MiB of enclave memory granted")  # fmt: skip
    args = " ".join([w for w in words if not w.startswith("memory=")] + [f"memory={asked}"])
    return EnclaveConfig(config.type, config.runtime, args, config.log_level, dict(config.sources))


def _asked(words: list[str], rootfs: str, source: str) -> tuple[Manifest, int]:
    """The manifest named by the options, and the memory its runtime will give the enclave (bytes),
    computed as the runtime does (enclave/runtimes/native.py, wasm.py: ``_prepare``)."""
    from ..enclave.errors import EnclaveConfigError
    from ..enclave.identity import IdentityError, parse_manifest
    from ..enclave.identity.rootfs import read_in_root
    from ..enclave.runtimes import _options

    known = frozenset(w.partition("=")[0] for w in words if "=" in w)  # the runtime checks the names itself
    try:
        opts = _options.parse(words, known | {"manifest"})
        try:
            manifest = parse_manifest(read_in_root(rootfs, opts.manifest, _MAX_MANIFEST), opts.manifest)
        except IdentityError as exc:
            raise SpecError(source, f"cannot read the enclave manifest: {exc}") from None
        if manifest.wasm is None:
            limit = manifest.memory_limit
            return manifest, _options.tighten("memory=", opts.memory, limit, " bytes") or limit
        pages = manifest.wasm.max_memory_pages
        if opts.memory is not None and opts.memory < _options.PAGE:
            raise _options.option_error(f"memory={opts.memory}", "is less than one 64 KiB wasm page")
        given = None if opts.memory is None else opts.memory // _options.PAGE
        return manifest, (_options.tighten("memory=", given, pages, " pages") or pages) * _options.PAGE
    except EnclaveConfigError as exc:
        raise SpecError(source, exc.reason) from None


def _mib(value: str, source: str) -> int:
    if not (value.isdigit() and value.isascii()) or int(value) == 0 or len(value) > 9:
        raise SpecError(source, f"{value!r} is not a number of MiB (a positive integer, set by kubelet "
                        "from the enclave memory allocated to the container)")  # fmt: skip
    return int(value)


def _what(manifest: Manifest) -> str:
    if manifest.wasm is not None:
        return f"wasm.max_memory_pages = {manifest.wasm.max_memory_pages}"
    return f"memory_limit = {manifest.memory_limit}"


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n} bytes"
