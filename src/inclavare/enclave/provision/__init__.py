"""Secret provisioning at launch: an enclave container gets its secrets from a
key broker (KBS) before its workload starts — as Gramine's secret
provisioning and Occlum's init-RA do, with the broker's identity measured
and TLS ending on the enclave side.

Who does what:

* the enclave's signed **manifest** names the brokers it trusts (``[kbs]``:
  URLs, a CA that is a trusted file, and/or key pins; enclave/identity/broker.py),
  so they are part of its measurement, and a broker that admits the
  measurement admits an enclave that will talk to nobody else;
* the **init-runelet** (in the container, holding the enclave) checks the
  host's ``enclave.kbs.url`` against the pins before anything leaves
  (pin.py), opens TLS to the broker itself and checks the pin inside
  (tunnel.py), makes an ephemeral TEE key, produces evidence binding it
  (RCAR, kbs/client.py), and decrypts the JWE resources;
* **`rune create`** (on the host, where the network is — the container may
  have a network namespace with no route out) only makes TCP connections to
  the container's replicas and copies bytes (host_relay.py): TLS records it
  can neither read nor forge.

Over the spawn channel, after the enclave is initialised (runtime/process/messages.py)::

    init                                          rune create               KBS
     | [kbs] pins vs enclave.kbs.url: refuse here  |                         |
     |-- socketpair end (SCM_RIGHTS, control) ---->|                         |
     |-- kbs-connect {host, port} ---------------->| connect(host:port) ---->|
     |<---------------------- kbs-connected {} ----|                         |
     |== TLS (pinned CA / key checked in init) =====[ bytes only ]==========>|
     |   POST /auth, /attest (evidence binds the TEE key), GET resources     |
     | decrypt; files in the secrets tmpfs          |                        |
     |-- kbs-done -------------------------------->| closes the connections  |

What that protects depends on the TEE (docs/kbs.md, "Trust model"). On
SGX/TDX/SNP hardware the TEE key, the TLS keys and the plaintext stay in
memory the host cannot read. The built-in runtimes (wasm, native) are
*software* enclaves: an ordinary process on the host, whose memory root can
read — their evidence is marked software so that a KBS refuses it for
secrets that matter. The secrets tmpfs is in the container's mount
namespace and likewise readable by the host's root.

Configuration (annotations; the first two also as ``ENCLAVE_KBS_URL`` and
``ENCLAVE_KBS_RESOURCES`` in process.env, enclave/config.py):
``enclave.kbs.url`` (comma-separated replicas, https only),
``enclave.kbs.resources`` (comma-separated ``repository/type/tag``),
``enclave.kbs.secrets_dir`` (default ``/run/secrets``), and for an enclave
that pins no broker only: ``enclave.kbs.insecure_unpinned=true`` (the
development opt-out, logged) with ``enclave.kbs.cacert`` (a CA bundle on
the host; default: the host's system bundle). If anything fails, the
container does not start: `rune create` exits 1 with one line.
"""

from __future__ import annotations

import os

from ...errors import EnclaveError
from ...spec.model import Mount
from ..errors import EnclaveConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Protocol

    from ..config import Settings
    from ..identity.broker import BrokerPin
    from ..interface import EnclaveRuntime
    from .pin import BrokerTrust

    class Channel(Protocol):
        """The spawn channel between rune and init (runtime/process/messages.py), as provisioning uses it."""

        rfd: int

        def send(self, kind: str, payload: object = None) -> None: ...
        def expect(self, kind: str) -> object: ...
        def expect_one(self, kinds: tuple[str, ...]) -> tuple[str, object]: ...
        def buffered(self) -> bool: ...


DEFAULT_SECRETS_DIR = "/run/secrets"
_TRUE = {"true": True, "false": False}


class KbsPlan:
    """What to fetch from where, parsed from the annotations in `rune create` (the host's choice)."""

    __slots__ = ("cacert_pem", "insecure_unpinned", "resources", "secrets_dir", "url_source", "urls")

    def __init__(self, urls: list[str], resources: list[str], secrets_dir: str, *, url_source: str = "enclave.kbs.url",
                 cacert_pem: bytes | None = None, insecure_unpinned: bool = False) -> None:  # fmt: skip
        self.urls = urls  # normalised (identity/broker.py normalize_url)
        self.url_source = url_source  # "annotations.enclave.kbs.url" or "process.env ENCLAVE_KBS_URL"
        self.resources = resources
        self.secrets_dir = secrets_dir
        self.cacert_pem = cacert_pem  # enclave.kbs.cacert, read on the host (unpinned only)
        self.insecure_unpinned = insecure_unpinned

    @classmethod
    def from_settings(cls, settings: Settings) -> KbsPlan | None:
        """The plan of a container's enclave settings (enclave/config.py), or None
        without a KBS url; errors name the annotation or variable at fault."""
        url, url_source = settings.found.get("kbs_url", ("", ""))
        if not url.strip():
            return None
        # Not before: identity/ imports cryptography (~60 ms of every enclave container's create).
        from ..identity.broker import normalize_url

        resources = [r.strip().strip("/") for r in settings.get("kbs_resources").split(",") if r.strip()]
        for r in resources:
            if r.count("/") != 2 or ".." in r.split("/"):
                raise EnclaveConfigError(settings.source("kbs_resources"), f"{r!r} is not repository/type/tag")
        secrets_dir = settings.get("kbs_secrets_dir", DEFAULT_SECRETS_DIR)
        if not secrets_dir.startswith("/"):
            raise EnclaveConfigError(settings.source("kbs_secrets_dir"), f"{secrets_dir!r} is not an absolute path")
        urls = []
        for u in (u for u in url.split(",") if u.strip()):
            try:
                urls.append(normalize_url(u))
            except ValueError as exc:
                raise EnclaveConfigError(url_source, str(exc)) from None
        unpinned = _TRUE.get(settings.get("kbs_insecure_unpinned", "false"))
        if unpinned is None:
            raise EnclaveConfigError(settings.source("kbs_insecure_unpinned"), "must be true or false")
        return cls(urls, resources, secrets_dir, url_source=url_source, cacert_pem=_cacert(settings),
                   insecure_unpinned=unpinned)  # fmt: skip


def _cacert(settings: Settings) -> bytes | None:
    path = settings.get("kbs_cacert") or None
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as exc:
        raise EnclaveConfigError(settings.source("kbs_cacert"), f"{path}: {exc.strerror}") from None


# -- the host side: rune create relays bytes -------------------------------------------


def relay(channel: Channel, plan: KbsPlan, control_fd: int) -> None:
    """Serve the enclave side's connections until it is done; raises (one line) on its failure."""
    import socket

    from ..identity.broker import host_port
    from .host_relay import HostRelay

    HostRelay(channel, socket.socket(fileno=control_fd), {host_port(u) for u in plan.urls}).run()


# -- the enclave side: the init-runelet ---------------------------------------------------


def preload(plan: KbsPlan, tee: str) -> ssl.SSLContext | None:
    """Before pivot_root: load everything :func:`receive` needs (a full dry run,
    dry_run.py: after pivot_root an import, a codec or a CA file is out of
    reach), and, for the unpinned opt-out, the host's CA bundle."""
    from .dry_run import dry_run

    dry_run(tee)
    return _host_context(plan) if plan.insecure_unpinned else None


def _host_context(plan: KbsPlan) -> ssl.SSLContext:
    import ssl

    from .pin import client_context

    if plan.cacert_pem is not None:
        return client_context(plan.cacert_pem)
    bundle = ssl.get_default_verify_paths().cafile
    try:
        with open(bundle or "", "rb") as f:
            return client_context(f.read())
    except OSError as exc:
        raise EnclaveError(f"secret provisioning: the host's CA bundle {bundle}: {exc.strerror} "
                           "(name one with enclave.kbs.cacert)") from None  # fmt: skip


def receive(channel: Channel | None, control_fd: int, rt: EnclaveRuntime, plan: KbsPlan, owner: tuple[int, int],
            host_context: ssl.SSLContext | None) -> None:  # fmt: skip
    """Attest through the tunnel and write the secrets into plan.secrets_dir."""
    if channel is None or control_fd < 0:  # an init not started by rune: nobody on the host to relay
        raise EnclaveError("secret provisioning: no channel to rune, so no way to the KBS")
    import socket

    from .fetch import fetch
    from .spawn import DONE
    from .tunnel import Tunnel, TunnelTransport

    trust = decide_trust(rt, plan, host_context)
    with socket.socket(fileno=control_fd) as control:
        secrets = fetch(rt, plan, TunnelTransport(Tunnel(channel, control, trust)), trust.urls)
    write_secrets(plan.secrets_dir, secrets, owner)
    channel.send(DONE)


def decide_trust(rt: EnclaveRuntime, plan: KbsPlan, host_context: ssl.SSLContext | None) -> BrokerTrust:
    """The enclave's pin if its runtime knows one (pin.py), else the development opt-out, else a refusal."""
    from .pin import BrokerTrust, pinned

    measured = trusted_broker(rt)
    if measured is not None:
        return pinned(plan.urls, plan.url_source, *measured)
    if not plan.insecure_unpinned or host_context is None:
        raise EnclaveError("secret provisioning: the enclave's manifest pins no key broker ([kbs]), so it would "
                           "attest to whichever the host names; refused (enclave.kbs.insecure_unpinned=true "
                           "allows it, for development)")  # fmt: skip
    return BrokerTrust(plan.urls, host_context, (), False)


def trusted_broker(rt: EnclaveRuntime) -> tuple[BrokerPin, bytes | None] | None:
    """What the runtime's verified manifest pins, with the CA's bytes; None for a runtime
    that knows of no measured broker (a PAL, or a manifest without [kbs])."""
    ask = getattr(rt, "trusted_broker", None)  # the built-in runtimes (runtimes/_base.py)
    found = ask() if callable(ask) else None
    if found is None:
        return None
    from ..identity.broker import BrokerPin

    pin, ca = found
    assert isinstance(pin, BrokerPin)
    assert ca is None or isinstance(ca, bytes)
    return pin, ca


def secrets_mount(directory: str) -> Mount:
    """The secrets' home: a tmpfs of its own (secrets never touch the rootfs's
    disk), added to the container's mounts, so it exists before the enclave
    starts (a runtime can be told to expose it, e.g. a wasm preopen) and is
    filled once attestation succeeded."""
    return Mount(destination=directory, type="tmpfs", source="tmpfs",
                 options=["nosuid", "nodev", "noexec", "mode=0700", "size=4m"])  # fmt: skip


def write_secrets(directory: str, secrets: dict[str, bytes], owner: tuple[int, int]) -> None:
    """Each resource as a file named by its tag (``default/key/db`` -> ``db``),
    0400, owned by the workload's user."""
    try:
        for path, plaintext in secrets.items():
            name = path.rsplit("/", 1)[-1]
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(os.path.join(directory, name), flags, 0o400)
            try:
                os.write(fd, plaintext)
                os.fchown(fd, *owner)
            finally:
                os.close(fd)
        os.chown(directory, *owner)
    except OSError as exc:
        raise EnclaveError(f"secret provisioning: writing into {directory}: {exc.strerror}") from None
