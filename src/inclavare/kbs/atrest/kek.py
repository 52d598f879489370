"""Key-encryption keys (KEKs): where a broker gets them, and the keyring it holds.

A KEK is 32 bytes, an AES-256 key. It never enters the database: the
database holds, per resource, a data key wrapped under a KEK
(:mod:`.envelope`) and that KEK's *id*, ``HMAC-SHA256(KEK, "inclavare-kbs
kek-id v1")`` truncated to 8 bytes (hex). The id names a key without
revealing it, and lets the broker tell a wrong key from the right one
before it touches a row.

Sources (``[storage.kek]``, and ``[[storage.kek.previous]]`` during a
rotation), exactly one per table:

- ``file = PATH``: the key, raw (exactly 32 bytes) or as hex or base64
  text; refused if other users may read or write the file (mode ``o+rwx``).
- ``env = NAME``: the key in an environment variable, hex or base64 text.
- ``command = [ARGV...]``, optional ``stdin = PATH``, ``timeout = 10``: a
  KMS-style provider. The broker runs ARGV (no shell) with the contents of
  ``stdin`` on its standard input (or nothing), waits at most ``timeout``
  seconds, and takes the key from its standard output, in any of the file
  forms. Exit status 0 means success; otherwise the last line of its
  standard error goes into the broker's one-line refusal. Its output is
  never logged. ``stdin`` is how a KMS *unwraps*: the file holds the KEK
  encrypted by the KMS, and the command decrypts it (``aws kms decrypt``,
  ``gcloud kms decrypt``, ``systemd-creds decrypt``; docs/kbs.md has
  examples).

Every failure is a :class:`~inclavare.kbs.errors.ConfigError` naming the
config field: ``kbs.toml: storage.kek.file: /etc/kbs/kek: No such file or
directory``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError

KEY_BYTES = 32
MAX_OUTPUT = 64 << 10  # a command printing more than this is not printing a key
_ID_LABEL = b"inclavare-kbs kek-id v1"


@dataclass(frozen=True)
class KekSource:
    """One ``[storage.kek]``-shaped table: where one KEK comes from."""

    where: str  # "storage.kek" or "storage.kek.previous[i]", for located errors
    file: str | None = None
    env: str | None = None
    command: tuple[str, ...] = ()
    stdin: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class KekConfig:
    """``[storage.kek]``: the key new data keys are wrapped under, and the keys being rotated away from."""

    current: KekSource
    previous: tuple[KekSource, ...] = ()


def kek_id(key: bytes) -> str:
    return hmac.new(key, _ID_LABEL, hashlib.sha256).hexdigest()[:16]


class Kek:
    """One KEK: its id and an AES-256-GCM instance; the key bytes are not kept anywhere else."""

    __slots__ = ("_aead", "id", "where")

    def __init__(self, key: bytes, where: str = "storage.kek") -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a KEK is 32 bytes")
        self.id = kek_id(key)
        self.where = where
        self._aead = AESGCM(key)

    @property
    def aead(self) -> AESGCM:
        return self._aead

    def __repr__(self) -> str:
        return f"Kek({self.id})"


class Keyring:
    """The KEKs a broker holds: ``current`` (what a rotation moves to) and ``previous`` (what it moves from).

    Which KEK new data keys are wrapped under is the *database's* choice
    (its active KEK, see :mod:`inclavare.kbs.storage.sealed`), so replicas
    that already hold a new key keep writing under the old one until
    ``inclavare kbs rotate-kek`` switches every replica at once.
    """

    def __init__(self, current: Kek, previous: Iterable[Kek] = ()) -> None:
        self.current = current
        self.previous = tuple(previous)
        self._by_id = {k.id: k for k in (*self.previous, current)}

    def get(self, kid: str) -> Kek | None:
        return self._by_id.get(kid)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def describe(self) -> str:
        """``3f2a... (storage.kek), 9c1d... (storage.kek.previous[0])``: ids only."""
        return ", ".join(f"{k.id} ({k.where})" for k in (self.current, *self.previous))


def load_keyring(config: KekConfig | None, file: str = "kbs.toml") -> Keyring:
    """Every configured KEK, loaded; a ConfigError naming the field if one is missing or unusable."""
    if config is None:
        raise ConfigError(
            "storage.kek",
            "missing: resources are stored encrypted under a key-encryption key "
            "(inclavare kbs keygen --kek FILE, then [storage.kek] file = FILE; docs/kbs.md)",
            file,
        )
    current = load_kek(config.current, file)
    previous = [load_kek(source, file) for source in config.previous]
    for source, kek in zip(config.previous, previous, strict=True):
        if kek.id == current.id:
            raise ConfigError(source.where, f"the same key as storage.kek ({kek.id})", file)
    return Keyring(current, previous)


def load_kek(source: KekSource, file: str = "kbs.toml") -> Kek:
    if source.file is not None:
        key = _parse_key(_read_private(source.file, f"{source.where}.file", file), raw=True)
        field, origin = "file", source.file
    elif source.env is not None:
        text = os.environ.get(source.env)
        if not text:
            raise ConfigError(f"{source.where}.env", f"the environment variable {source.env} is not set", file)
        key = _parse_key(text.encode("latin-1", "replace"), raw=False)
        field, origin = "env", f"${source.env}"
    else:
        key = _parse_key(_run(source, file), raw=True)
        field, origin = "command", source.command[0]
    if key is None:
        reason = f"{origin}: not a 32-byte key (raw, 64 hex digits or base64; inclavare kbs keygen --kek makes one)"
        raise ConfigError(f"{source.where}.{field}", reason, file)
    return Kek(key, source.where)


def _parse_key(data: bytes, raw: bool) -> bytes | None:
    """The key in ``data``: exactly 32 raw bytes (files and commands only), 64 hex digits, or base64."""
    if raw and len(data) == KEY_BYTES:
        return data
    text = data.strip()
    try:
        key = (
            bytes.fromhex(text.decode("ascii")) if len(text) == 2 * KEY_BYTES else base64.b64decode(text, validate=True)
        )
    except (ValueError, binascii.Error):
        return None
    return key if len(key) == KEY_BYTES else None


def _read_private(path: str, where: str, file: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(where, f"{path}: {exc.strerror}", file) from None
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o007:  # as ssh does for private keys: a KEK others can read protects nothing
            raise ConfigError(where, f"{path}: other users may access it (mode {mode:04o}); chmod o-rwx", file)
        return f.read(MAX_OUTPUT)


def _run(source: KekSource, file: str) -> bytes:
    where, argv0 = f"{source.where}.command", source.command[0]
    stdin = b""
    if source.stdin is not None:
        try:
            with open(source.stdin, "rb") as f:
                stdin = f.read(MAX_OUTPUT)
        except OSError as exc:
            raise ConfigError(f"{source.where}.stdin", f"{source.stdin}: {exc.strerror}", file) from None
    try:
        done = subprocess.run(
            list(source.command), input=stdin, capture_output=True, timeout=source.timeout, check=False
        )
    except FileNotFoundError:
        raise ConfigError(where, f"{argv0}: command not found", file) from None
    except OSError as exc:
        raise ConfigError(where, f"{argv0}: {exc.strerror}", file) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            where, f"{argv0}: no answer within {source.timeout:g} s (storage.kek timeout)", file
        ) from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = f": {lines[-1][:160]}" if lines else ""
        how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else f"exited {done.returncode}"
        raise ConfigError(where, f"{argv0} {how}{why}", file)
    if len(done.stdout) > MAX_OUTPUT:
        raise ConfigError(where, f"{argv0}: printed more than {MAX_OUTPUT} bytes, not a key", file)
    return done.stdout
