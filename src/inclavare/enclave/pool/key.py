"""The pool key: which pre-initialised instance may serve which container.

An instance is prepared from one template (runtime, options, signed manifest,
signature); a container may have it only if its own four are byte for byte
the same. The key is a SHA-256 over them, so a lookup never needs the
manifest parsed (init computes it without importing the identity layer):

    SHA-256("inclavare-pool-v1\\0" runtime "\\0" args "\\0" SHA-256(manifest) SHA-256(signature))

The key only finds candidates. What makes the hand-over safe is the guest's
own check after it joined the container (:mod:`.guest`): the container's
rootfs verified in full, and its measurement and signer equal to the ones the
instance was prepared for — else it refuses and the container is not created.
"""

from __future__ import annotations

import os
import stat

from ..._sys.inroot import open_in_root
from ...errors import SyscallError
from ..errors import EnclaveError
from ..runtimes import _options

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib

    from ..._sys import Syscalls

BUILTIN = frozenset({"wasm", "native"})  # the runtimes the pool can pre-initialise
_ALL_OPTIONS = frozenset({"manifest", "sig", "signer", "memory", "fuel", "timeout", "preopen", "cache"})
_MAX_FILE = 4 << 20


def pool_key(runtime: str, args: str, manifest: bytes, signature: bytes) -> str:
    h = _sha256(b"inclavare-pool-v1\0")
    h.update(runtime.encode() + b"\0" + args.encode() + b"\0")
    h.update(_sha256(manifest).digest() + _sha256(signature).digest())
    return h.hexdigest()


def _sha256(data: bytes) -> hashlib._Hash:
    """CPython's built-in SHA-256: hashlib would load OpenSSL's libcrypto (~4 ms of a create)."""
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        from hashlib import sha256
    digest: hashlib._Hash = sha256(data)
    return digest


def key_of_rootfs(sc: Syscalls, rootfs: str, runtime: str, args: str) -> str:
    """The key of a bundle whose rootfs is `rootfs` (a host path), read inside it
    (RESOLVE_IN_ROOT: a symlink in an image cannot point the read elsewhere)."""
    opts = _options.parse(args.replace(",", " ").split(), _ALL_OPTIONS)  # interface.split_args, without typing
    if not opts.manifest:
        raise EnclaveError("enclave pool: enclave.runtime.args names no manifest=")
    root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        manifest = _read(sc, root, opts.manifest)
        signature = _read(sc, root, opts.sig)
    finally:
        os.close(root)
    return pool_key(runtime, args, manifest, signature)


def _read(sc: Syscalls, root: int, path: str) -> bytes:
    """A regular file of the image, read as host root: first an O_PATH look, because opening a
    device node an image layer carries (a watchdog, a tape) acts on the host's device, outside
    the container's devices cgroup that would refuse it to init (open(2), O_PATH)."""
    try:
        handle = open_in_root(sc, root, path, os.O_PATH)
    except SyscallError as exc:
        raise EnclaveError(f"enclave pool: {path}: {os.strerror(exc.errno)}") from None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise EnclaveError(f"enclave pool: {path}: not a regular file")
        fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        os.close(handle)
    with os.fdopen(fd, "rb") as f:
        data = f.read(_MAX_FILE + 1)
    if len(data) > _MAX_FILE:
        raise EnclaveError(f"enclave pool: {path}: larger than {_MAX_FILE >> 20} MiB")
    return data
