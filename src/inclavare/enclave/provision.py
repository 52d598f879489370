"""Secret provisioning at launch: an enclave container gets its secrets from a
key broker (KBS) before its workload starts — as Gramine's secret
provisioning and Occlum's init-RA do.

Who does what (the relay on the host only ever carries ciphertext):

* the **init-runelet** (in the container, holding the enclave) makes an
  ephemeral TEE key, computes the report data the KBS challenge asks for,
  produces evidence with the enclave runtime (``local_report``) and decrypts
  the resources, which the KBS encrypts to the TEE key (JWE);
* **`rune create`** (on the host, where the network is — the container may
  have a network namespace with no route out) only relays the RCAR messages
  over HTTP: /auth, /attest and the resource GETs. It carries ciphertext.

What the relay cannot do is read a secret; what it *can* do is substitute
one: the JWE is anonymous encryption to the TEE's public key, which the
host sees, and TLS to the KBS ends in `rune create`, on the host. Closing
that needs the KBS to sign its answers under a key measured into the
enclave (or TLS ending inside it); until then a substituted secret is a
known limitation (docs/kbs.md). ``enclave.kbs.url`` must be https unless it
names this machine, so at least nobody on the network can substitute.

What that protects depends on the TEE. On SGX/TDX/SNP hardware the TEE key
and the plaintext stay in enclave memory the host cannot read. The built-in
runtimes (wasm, native) are *software* enclaves: an ordinary process on the
host, whose memory root can read — their evidence is marked software so
that a KBS refuses it for secrets that matter (our ``default`` attestation
policy calls it contraindicated hardware; ``allow-software`` is for
development and can never make it *affirming*).
The secrets tmpfs is in the container's mount namespace and is likewise
readable by the host's root.

Over the spawn channel, after the enclave is initialised::

    init                                        rune create             KBS
     |-- kbs-start {tee, tee_pubkey} ------------->| POST /kbs/v0/auth --->|
     |<------------------ kbs-challenge {challenge}|<----------------------|
     | report data = H(nonce, tee_pubkey)           |                       |
     | evidence = local_report(report data)         |                       |
     |-- kbs-evidence {evidence} ------------------>| POST /kbs/v0/attest ->|
     |                                              | GET resource/... ---->|
     |<------------------ kbs-resources {path: jwe}|<-- JWE to the TEE key|
     | decrypt; files in the secrets tmpfs          |                       |

Configuration (annotations; the first two also as ``ENCLAVE_KBS_URL`` and
``ENCLAVE_KBS_RESOURCES`` in process.env, enclave/config.py):
``enclave.kbs.url`` (comma-separated replicas),
``enclave.kbs.resources`` (comma-separated ``repository/type/tag``),
``enclave.kbs.secrets_dir`` (default ``/run/secrets``), ``enclave.kbs.cacert``
(a CA bundle on the host, for https). If attestation fails, the container
does not start: `rune create` fails with the KBS's one-line answer.
"""

from __future__ import annotations

import base64
import os

from ..errors import EnclaveError
from ..spec.model import Mount
from .errors import EnclaveConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol, TypeVar

    import httpx

    from .config import Settings
    from .interface import EnclaveRuntime

    T = TypeVar("T")

    class Channel(Protocol):
        """The spawn channel between rune and init (runtime/process/messages.py), as this exchange uses it."""

        def send(self, kind: str, payload: object = None) -> None: ...
        def expect(self, kind: str) -> object: ...


START, CHALLENGE, EVIDENCE, RESOURCES = "kbs-start", "kbs-challenge", "kbs-evidence", "kbs-resources"
DEFAULT_SECRETS_DIR = "/run/secrets"


class KbsPlan:
    """What to fetch from where, parsed from the annotations in `rune create`."""

    __slots__ = ("cacert", "resources", "secrets_dir", "urls")

    def __init__(self, urls: list[str], resources: list[str], secrets_dir: str, cacert: str | None) -> None:
        self.urls = urls
        self.resources = resources
        self.secrets_dir = secrets_dir
        self.cacert = cacert

    @classmethod
    def from_settings(cls, settings: Settings) -> KbsPlan | None:
        """The plan of a container's enclave settings (enclave/config.py), or None
        without a KBS url; errors name the annotation or variable at fault."""
        url, url_source = settings.found.get("kbs_url", ("", ""))
        if not url.strip():
            return None
        resources = [r.strip().strip("/") for r in settings.get("kbs_resources").split(",") if r.strip()]
        for r in resources:
            if r.count("/") != 2 or ".." in r.split("/"):
                raise EnclaveConfigError(settings.source("kbs_resources"), f"{r!r} is not repository/type/tag")
        secrets_dir = settings.get("kbs_secrets_dir", DEFAULT_SECRETS_DIR)
        if not secrets_dir.startswith("/"):
            raise EnclaveConfigError(settings.source("kbs_secrets_dir"), f"{secrets_dir!r} is not an absolute path")
        cacert = settings.get("kbs_cacert") or None
        if cacert is not None and not os.path.isfile(cacert):
            raise EnclaveConfigError(settings.source("kbs_cacert"), f"{cacert}: no such file")
        urls = [u.strip() for u in url.split(",") if u.strip()]
        for u in urls:
            _check_url(u, url_source)
        return cls(urls, resources, secrets_dir, cacert)


def _check_url(url: str, source: str) -> None:
    """https, or plain http to this machine only: the JWE keeps a resource
    secret, but not authentic — anyone on the path could substitute one
    encrypted to the (public) TEE key."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    if parts.scheme == "http" and (host in ("localhost", "::1") or host.startswith("127.")):
        return
    raise EnclaveConfigError(source, f"{url!r} must be https (plain http only to a loopback address)")


# -- the host side: rune create relays -------------------------------------------------


def relay(channel: Channel, plan: KbsPlan) -> None:
    """Run the KBS exchange for init over HTTP; raises EnclaveError (one line) on refusal."""
    import httpx

    from ..kbs.client import problem_of, tls_verify
    from ..kbs.protocol.handshake import ClientHandshake
    from ..kbs.protocol.session import COOKIE_NAME

    start = channel.expect(START)
    hs = ClientHandshake(_member(start, START, "tee", str), _member(start, START, "tee_pubkey", dict))
    tls = any(u.startswith("https:") for u in plan.urls)
    with httpx.Client(verify=tls_verify(plan.cacert or True) if tls else False, timeout=10.0) as http:
        base, challenge = _first_answer(http, plan.urls, hs.request())
        cookie = {COOKIE_NAME: challenge.cookies.get(COOKIE_NAME) or ""}
        doc = _ok(challenge, problem_of).json()
        hs.challenge(doc)  # checks the KBS chose an algorithm we offered
        channel.send(CHALLENGE, {"challenge": doc})
        evidence = _base64(_member(channel.expect(EVIDENCE), EVIDENCE, "evidence", str))
        _ok(http.post(f"{base}/kbs/v0/attest", json=hs.attestation(evidence), cookies=cookie), problem_of)
        sealed = {}
        for path in plan.resources:
            response = http.get(f"{base}/kbs/v0/resource/{path}", cookies=cookie,
                                headers={"Idempotency-Key": os.urandom(16).hex()})  # fmt: skip
            sealed[path] = _ok(response, problem_of).json()
    channel.send(RESOURCES, {"resources": sealed})


def _first_answer(http: httpx.Client, urls: list[str], body: dict[str, object]) -> tuple[str, httpx.Response]:
    """POST /auth to the first replica that answers; the session then stays with it."""
    last = ""
    for url in urls:
        base = url.rstrip("/")
        try:
            return base, http.post(f"{base}/kbs/v0/auth", json=body)
        except Exception as exc:  # httpx.TransportError and friends: try the next replica
            last = f"{type(exc).__name__} talking to {base}"
    raise EnclaveError(f"secret provisioning: KBS unreachable ({last})")


def _ok(response: httpx.Response, problem_of: Callable[[httpx.Response], Exception]) -> httpx.Response:
    if response.status_code >= 400:
        raise EnclaveError(f"secret provisioning: {problem_of(response)}")
    return response


# -- the enclave side: the init-runelet ---------------------------------------------------


def preload() -> None:
    """Load everything :func:`receive` needs while the host's Python is still
    reachable (after pivot_root an import — or a codec lookup, such as the
    UTF-16 one canonical JSON uses to sort keys — fails): by doing it once, a
    full dry run of the enclave side against a throw-away key and nonce."""
    from ..kbs import jwe
    from ..kbs.protocol.handshake import ClientHandshake

    key = jwe.TeeKey.generate()
    hs = ClientHandshake("software", key.public_jwk())
    hs.challenge({"nonce": base64.b64encode(bytes(32)).decode(), "extra-params": {}})
    key.decrypt(jwe.encrypt(key.public_jwk(), b"dry run"))


def receive(channel: Channel | None, rt: EnclaveRuntime, plan: KbsPlan, owner: tuple[int, int]) -> None:
    """Attest through the relay and write the secrets into plan.secrets_dir."""
    if channel is None:  # an init not started by rune: nobody on the host to relay to
        raise EnclaveError("secret provisioning: no channel to rune, so no relay to the KBS")
    from ..kbs.jwe import TeeKey
    from ..kbs.protocol.handshake import ClientHandshake

    tee = rt.probe()["tee"]
    key = TeeKey.generate()
    hs = ClientHandshake(tee, key.public_jwk())
    channel.send(START, {"tee": tee, "tee_pubkey": key.public_jwk()})
    report_data = hs.challenge(_member(channel.expect(CHALLENGE), CHALLENGE, "challenge", dict))
    evidence = rt.local_report(b"", report_data)
    channel.send(EVIDENCE, {"evidence": base64.b64encode(evidence).decode()})
    sealed = _member(channel.expect(RESOURCES), RESOURCES, "resources", dict)
    if sorted(sealed) != sorted(plan.resources):
        raise EnclaveError("secret provisioning: the relay answered other resources than the ones asked for")
    write_secrets(plan.secrets_dir, {path: key.decrypt(sealed[path]) for path in plan.resources}, owner)


def _member(message: object, kind: str, name: str, shape: type[T]) -> T:
    """``message[name]``, which must be a ``shape``: the other side of the channel is input too
    (for rune, the container's init; a malformed message is a one-line refusal, not a traceback)."""
    value = message.get(name) if isinstance(message, dict) else None
    if not isinstance(value, shape):
        what = "a string" if shape is str else "an object" if shape is dict else shape.__name__
        raise EnclaveError(f"secret provisioning: {kind} message: {name} must be {what}")
    return value


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise EnclaveError(f"secret provisioning: {EVIDENCE} message: evidence is not base64") from None


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
