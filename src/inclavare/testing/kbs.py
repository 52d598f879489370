"""A test kit for the broker: real processes, a private PostgreSQL, a signed software enclave.

Used by the test suite and ``bench/kbs.py``; nothing in it fakes the broker:

- :class:`World` writes what a deployment needs into a directory: a software-TEE
  host key, an admin key, a token key, a key-encryption key, a signed enclave
  and its rootfs, configs;
- :class:`KbsProcess` runs ``inclavare kbs serve`` as a child process (real
  uvicorn), waits for its ready file, and can stop it or SIGKILL it;
- :class:`TlsBroker` is that process over HTTPS with a CA of its own, trusting
  this machine's software-TEE host key (a broker an enclave can pin);
- :class:`PostgresServer` runs a throw-away PostgreSQL (``initdb`` + ``postgres``
  on a unix socket in a temporary directory, as the ``postgres`` user when we
  are root) and removes it afterwards.
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..enclave.identity import EnclaveIdentity, HostKey, KeySigner, sign_manifest, verify_signature, write_signature
from ..enclave.identity.expand import dump_manifest, expand_trusted_files
from ..enclave.identity.manifest import parse_manifest
from ..kbs.admin_client import KbsAdmin
from .containers import wait_for
from .pki import CertificateAuthority, spki_pin

PG_BIN = os.environ.get("INCLAVARE_PG_BIN", "/usr/lib/postgresql/15/bin")
MANIFEST = """\
runtime = "native"
entrypoint = "/bin/app"
memory_limit = "64M"
isv_prod_id = 7
isv_svn = 3
trusted_files = ["/bin/app", "/etc/app.conf"]

[argv]
policy = "fixed"
values = ["/bin/app"]
"""


def _pem_private(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class World:
    """Keys, a signed enclave and configs under ``root``."""

    root: str
    host_key: HostKey
    admin_key: ed25519.Ed25519PrivateKey
    tenant_key: ed25519.Ed25519PrivateKey
    manifest: str
    sig: str
    rootfs: str
    identity: EnclaveIdentity

    @classmethod
    def create(cls, root: str) -> World:
        os.makedirs(root, exist_ok=True)
        host = HostKey.from_seed(bytes(range(32)))
        _write(f"{root}/host-key.pub.pem", host.public_pem)
        _write(f"{root}/host-key.pem", _pem_private(host.private_key()))
        admin, tenant = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
        for name, key in (("admin", admin), ("tenant-a", tenant)):
            _write(f"{root}/{name}.pem", _pem_private(key))
            _write(f"{root}/{name}.pub.pem", _pem_public(key.public_key()))
        _write(f"{root}/token.pem", _pem_private(ec.generate_private_key(ec.SECP256R1())))
        _write(f"{root}/kek", base64.b64encode(os.urandom(32)) + b"\n")
        os.chmod(f"{root}/kek", 0o600)
        manifest, sig, rootfs, identity = signed_enclave(f"{root}/enclave")
        return cls(root, host, admin, tenant, manifest, sig, rootfs, identity)

    @property
    def kek(self) -> str:
        """The key-encryption key file (base64, 0600) every config of this world names."""
        return f"{self.root}/kek"

    def config(self, name: str, *, storage: str = "", extra: str = "", kek: bool = True) -> str:
        """Write ``<root>/<name>.toml``: listen on any port, software evidence trusted, two admins.

        ``kek=False`` leaves ``[storage.kek]`` out, for a ``storage`` text that
        has its own.
        """
        kek_table = f'[storage.kek]\nfile = "{self.kek}"\n' if kek else ""
        text = f"""\
[http]
listen = "127.0.0.1:0"

[attestation]
collateral = ["{self.root}/host-key.pub.pem"]
policy = "allow-software"

[token]
signing_key = "{self.root}/token.pem"

[audit]
path = "{self.root}/{name}-audit.jsonl"
replica = "{name}"

{storage or f'[storage]{chr(10)}path = "{self.root}/{name}.db"'}
{kek_table}

[[admin.keys]]
name = "ops"
public_key = "{self.root}/admin.pub.pem"
scopes = ["*"]

[[admin.keys]]
name = "tenant-a"
public_key = "{self.root}/tenant-a.pub.pem"
scopes = ["tenant-a/*"]
{extra}
"""
        path = f"{self.root}/{name}.toml"
        _write(path, text.encode())
        return path


def signed_enclave(root: str) -> tuple[str, str, str, EnclaveIdentity]:
    """A rootfs, an expanded manifest and its Ed25519 signature: (manifest, sig, rootfs, identity)."""
    rootfs = f"{root}/rootfs"
    for rel, data in {"bin/app": b"\x7fELF kbs test app", "etc/app.conf": b"mode=prod\n"}.items():
        os.makedirs(os.path.dirname(f"{rootfs}/{rel}"), exist_ok=True)
        _write(f"{rootfs}/{rel}", data)
    manifest = f"{root}/enclave.manifest.toml"
    _write(manifest, dump_manifest(expand_trusted_files(parse_manifest(MANIFEST, "enclave"), rootfs)).encode())
    signer = KeySigner(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64))))
    sig = manifest + ".sig"
    write_signature(sign_manifest(manifest, rootfs, signer), sig)
    return manifest, sig, rootfs, verify_signature(manifest, sig, rootfs)


class KbsProcess:
    """``inclavare kbs serve --config CONFIG`` in a child process."""

    def __init__(
        self,
        config: str,
        env: dict[str, str] | None = None,
        log_level: str = "info",
        args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.config = config
        base = os.path.splitext(config)[0]
        self.ready_file = base + ".ready"
        self.log_path = base + ".log"
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        cmd = [python, "-m", "inclavare.cli.tool._main", "kbs", "serve", "--config", config]
        cmd += ["--ready-file", self.ready_file, "--log-level", log_level, *args]
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=self._log, env={**os.environ, **(env or {})}, start_new_session=True
        )
        self.url = "http://" + self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> str:
        def listening() -> str:  # "" until the file has host:port
            if self.proc.poll() is not None:
                raise RuntimeError(f"kbs serve exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                with open(self.ready_file) as f:
                    return f.read().strip()
            except FileNotFoundError:
                return ""

        try:
            return wait_for(listening, "kbs serve to listen", timeout)
        except AssertionError as exc:
            self.kill()
            raise RuntimeError(f"{exc}: {self.log()[-2000:]}") from None

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def __enter__(self) -> KbsProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TlsBroker:
    """`inclavare kbs serve` over HTTPS with a certificate of its own CA, trusting this machine's host key.

    ``ca_file`` is the CA an enclave's manifest pins, ``pin`` the server key's SPKI pin."""

    def __init__(self, world: World, name: str, *, trust_this_host: bool = True) -> None:
        """``trust_this_host=False``: only the world's host key is trusted (add this host's over the admin API)."""
        self.ca = CertificateAuthority(f"{name} CA")
        os.makedirs(f"{world.root}/{name}", exist_ok=True)
        cert, key = self.ca.write_server(f"{world.root}/{name}", "127.0.0.1")
        with open(cert, "rb") as f:
            self.pin = spki_pin(f.read())
        self.ca_file = f"{world.root}/{name}/ca.pem"
        _write(self.ca_file, self.ca.pem)
        _write(f"{world.root}/machine-host-key.pub.pem", HostKey.load_or_create().public_pem)  # the wasm runtime's
        config = world.config(name, extra="\n[rate_limit]\nenabled = false\n")
        with open(config) as f:
            text = f.read()
        if trust_this_host:
            text = text.replace(f"{world.root}/host-key.pub.pem", f"{world.root}/machine-host-key.pub.pem")
        text = text.replace("[http]\n", f'[http]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1)
        _write(config, text.encode())
        self.process = KbsProcess(config)
        self.url = self.process.url.replace("http://", "https://")

    def admin(self, world: World) -> KbsAdmin:
        return KbsAdmin(self.url, world.admin_key, verify=self.ca_file)

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> TlsBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PostgresServer:
    """A private PostgreSQL cluster on a unix socket; ``dsn(db)`` to connect."""

    PORT = 5432

    @staticmethod
    def available() -> bool:
        return all(os.access(f"{PG_BIN}/{b}", os.X_OK) for b in ("initdb", "postgres"))

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="inclavare-kbs-pg-")
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # postgres refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        data = f"{self.dir}/data"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        subprocess.run(
            [f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "kbs", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, env=env, cwd=self.dir, **self._as,
        )  # fmt: skip
        # Test cluster: the database is not what is being crash-tested, so durability is off for speed.
        options = ["-c", "listen_addresses=", "-k", self.dir, "-p", str(self.PORT), "-c", "fsync=off"]
        options += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"]
        self._log = open(f"{self.dir}/postgres.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [f"{PG_BIN}/postgres", "-D", data, *options],
            stdout=self._log,
            stderr=self._log,
            env=env,
            cwd=self.dir,
            **self._as,
        )
        self._wait()

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.dir} port={self.PORT} user=kbs dbname={dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def _wait(self, timeout: float = 30.0) -> None:
        import psycopg

        def accepting() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self.proc.returncode}")
            try:
                psycopg.connect(self.dsn(), connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        try:
            wait_for(accepting, "postgres to accept connections", timeout, interval=0.05)
        except AssertionError as exc:
            self.stop()
            raise RuntimeError(str(exc)) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    if path.endswith(".pem") and "pub" not in os.path.basename(path):
        os.chmod(path, 0o600)
