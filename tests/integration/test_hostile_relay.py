"""A malicious host cannot provision an enclave container with secrets of its choosing.

The enclave side is the real one (`rune create`'s init-runelet in a container,
the wasm runtime, the sample's signed and broker-pinned manifest) and so is the
tenant's broker (`inclavare kbs serve` over TLS). Only the host side is a test
double: `rune` whose relay (enclave/provision/host_relay.py ``HostRelay.open``)
hands the enclave a socket served by hostile code instead of the broker. This
file is also that rune: ``python test_hostile_relay.py MODE CONFIG rune-args``.

Every attack ends the same way: `rune create` exits 1 with one line, nothing
of the container is left, and no secret reaches the workload (which never runs).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable

import pytest

SECRET = b"the tenant's secret, for attested enclaves only"
SUBSTITUTE = b"the host's substitute secret"


# -- the hostile host side (runs inside `rune create`) -------------------------------------------


def _hostile_rune(mode: str, config: dict[str, str], argv: list[str]) -> int:
    from inclavare.cli.rune._main import main
    from inclavare.enclave.provision import host_relay

    real_open = host_relay.HostRelay.open

    class Hostile(host_relay.HostRelay):
        """Each connection the enclave asks for is served by `serve` in a thread of its own."""

        count = 0

        def open(self, host: str, port: int) -> socket.socket:
            mine, theirs = socket.socketpair()
            n, Hostile.count = Hostile.count, Hostile.count + 1
            connect: Callable[[], socket.socket] = lambda: real_open(self, host, port)  # noqa: E731
            threading.Thread(target=SERVE[mode], args=(theirs, connect, config, n), daemon=True).start()
            return mine

    host_relay.HostRelay = Hostile  # type: ignore[misc]
    return main(argv)


def _splice(a: socket.socket, b: socket.socket, edit: Callable[[str, bytes], bytes | None],
            cut: threading.Event | None = None) -> None:  # fmt: skip
    """Copy both ways; `edit(direction, chunk)` may change a chunk, or return None to cut the connection.
    Once `cut` is set, the connection is cut right after the chunk being copied (not at the next one,
    which may never come: the peer is waiting for the rest of what was cut)."""

    def copy(src: socket.socket, dst: socket.socket, direction: str) -> None:
        how = socket.SHUT_WR  # the end of one direction passes on as a half-close
        try:
            while data := src.recv(65536):
                changed = edit(direction, data)
                if changed is None:
                    how = socket.SHUT_RDWR
                    break
                dst.sendall(changed)
                if cut is not None and cut.is_set():
                    how = socket.SHUT_RDWR
                    break
        except OSError:
            how = socket.SHUT_RDWR
        for sock in (dst,) if how == socket.SHUT_WR else (a, b):
            try:
                sock.shutdown(how)
            except OSError:
                pass

    threads = [threading.Thread(target=copy, args=(a, b, "c2s")), threading.Thread(target=copy, args=(b, a, "s2c"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.close()
    b.close()


def _record(sock: socket.socket, connect: Callable[[], socket.socket], config: dict[str, str], n: int) -> None:
    """An honest relay that keeps a copy of everything it carries (the "old session" to replay)."""
    lock = threading.Lock()

    def keep(direction: str, data: bytes) -> bytes:
        with lock, open(config["recording"], "a") as f:
            f.write(json.dumps({"conn": n, "dir": direction, "data": base64.b64encode(data).decode()}) + "\n")
        return data

    _splice(sock, connect(), keep)


def _replay(sock: socket.socket, connect: Callable[[], socket.socket], config: dict[str, str], n: int) -> None:
    """Answers with the broker's bytes of an earlier, successful session (which carried the real secret)."""
    with open(config["recording"]) as f:
        records = [json.loads(line) for line in f]
    first = min(r["conn"] for r in records)
    old = b"".join(base64.b64decode(r["data"]) for r in records if r["conn"] == first and r["dir"] == "s2c")
    try:
        sock.recv(65536)  # the new ClientHello
        sock.sendall(old)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()


def _redirect(sock: socket.socket, connect: Callable[[], socket.socket], config: dict[str, str], n: int) -> None:
    """Whatever the enclave asked for: the host's own broker."""
    host, port = config["to"].rsplit(":", 1)
    _splice(sock, socket.create_connection((host, int(port)), timeout=10), lambda _d, data: data)


def _truncate(sock: socket.socket, connect: Callable[[], socket.socket], config: dict[str, str], n: int) -> None:
    """The real broker, but every connection is cut in the middle of its first answer after the handshake."""
    sent = {"c2s": 0}
    cut = threading.Event()

    def edit(direction: str, data: bytes) -> bytes | None:
        if cut.is_set():
            return None
        if direction == "c2s":
            sent["c2s"] += 1
            return data
        if sent["c2s"] >= 2:  # the client has finished its handshake: this is an answer
            cut.set()
            return data[: len(data) // 2]
        return data

    _splice(sock, connect(), edit, cut)


def _substitute(sock: socket.socket, connect: Callable[[], socket.socket], config: dict[str, str], n: int) -> None:
    """A man in the middle: TLS with the host's certificate for the broker's address, HTTP forwarded to the
    real broker, and the resource answered with a JWE of the host's own, encrypted to the enclave's TEE key."""
    import httpx

    from inclavare.kbs import jwe

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(config["cert"], config["key"])
    try:
        tls = server.wrap_socket(sock, server_side=True)
    except (ssl.SSLError, OSError):
        return  # the enclave refused the host's certificate: the attack ends here
    tee_key: dict[str, object] = {}
    with tls, httpx.Client(verify=ssl.create_default_context(cafile=config["broker_ca"])) as upstream:
        while request := _read_request(tls):
            method, path, headers, body = request
            if method == "GET" and path.startswith("/kbs/v0/resource/"):
                status, answer, cookie = 200, json.dumps(jwe.encrypt(tee_key, SUBSTITUTE)).encode(), ""
            else:
                if path == "/kbs/v0/attest":
                    tee_key.update(json.loads(body)["runtime-data"]["tee-pubkey"])
                kept = {k: v for k, v in headers.items() if k in ("cookie", "content-type")}
                r = upstream.request(method, config["broker"] + path, content=body, headers=kept)
                status, answer, cookie = r.status_code, r.content, r.headers.get("set-cookie", "")
            head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n"
            tls.sendall(head.encode() + (f"Set-Cookie: {cookie}\r\n" if cookie else "").encode() + b"\r\n" + answer)


def _read_request(tls: ssl.SSLSocket) -> tuple[str, str, dict[str, str], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += tls.recv(65536)
    method, path, _version = lines[0].split(" ", 2)
    return method, path, headers, body


def _tamper(sock: socket.socket, connect: Callable[[], socket.socket], config: dict[str, str], n: int) -> None:
    """The real broker, with one bit of its answer flipped once the handshake is over."""
    seen = {"c2s": 0, "flipped": 0}

    def edit(direction: str, data: bytes) -> bytes:
        seen["c2s"] += direction == "c2s"
        if direction == "s2c" and seen["c2s"] >= 2 and not seen["flipped"]:
            seen["flipped"] = 1
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    _splice(sock, connect(), edit)


SERVE = {"record": _record, "replay": _replay, "redirect": _redirect, "truncate": _truncate,
         "substitute": _substitute, "tamper": _tamper}  # fmt: skip


if __name__ == "__main__":
    sys.exit(_hostile_rune(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]))


# -- the tests -----------------------------------------------------------------------------------

from inclavare.testing import kbs as kbs_testing  # noqa: E402
from inclavare.testing.enclaves import pin_broker, set_enclave, wasm_bundle  # noqa: E402
from inclavare.testing.pki import CertificateAuthority  # noqa: E402

pytestmark = pytest.mark.root

HERE = os.path.abspath(__file__)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return kbs_testing.World.create(str(tmp_path_factory.mktemp("hostile")))


def _broker(world, name: str, secret: bytes, policy: str):
    broker = kbs_testing.TlsBroker(world, name)
    with broker.admin(world) as admin:
        admin.set_resource("default/secret/greeting", secret)
        admin.set_resource_policy(builtin=policy, scope="default/*")
    return broker


@pytest.fixture(scope="module")
def tenant_kbs(world):
    broker = _broker(world, "tenant", SECRET, "approved-executables")
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def host_kbs(world):
    """The host's own broker: its own CA, its own secret under the same path, and it admits anything."""
    broker = _broker(world, "host", SUBSTITUTE, "allow-all")
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def tenant_key():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def enclave(tmp_path, rootfs_cache, tenant_kbs, world, tenant_key):
    """A wasm enclave container whose manifest pins the tenant's broker, approved there, asking for the secret."""
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    pin_broker(bundle, tenant_key, [tenant_kbs.url], tenant_kbs.ca.pem)
    manifest = os.path.join(bundle, "rootfs/app/hello-wasm.toml")
    with tenant_kbs.admin(world) as admin:
        admin.add_from_enclave(manifest, manifest + ".sig", os.path.join(bundle, "rootfs"))
    annotations = {"enclave.kbs.url": tenant_kbs.url, "enclave.kbs.resources": "default/secret/greeting"}
    set_enclave(bundle, "preopen=/run/secrets", annotations, ["/app/hello.wasm", "read=/run/secrets/greeting"])
    return bundle


@pytest.fixture
def hostile(rune):
    """hostile(mode, config, *rune args) -> CompletedProcess of the hostile host's `rune`."""

    def run(mode: str, config: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, HERE, mode, json.dumps(config), *rune.globals, *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(cmd, stdout=out, stderr=err, timeout=120, cwd=os.path.dirname(HERE))
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(), err.read().decode())

    return run


def audit(kbs, world, event: str) -> list[dict[str, object]]:
    with kbs.admin(world) as admin:
        return [e for e in admin.audit(limit=1000) if e["event"] == event]


def refused(r: subprocess.CompletedProcess[str], state_root: str, cid: str, pattern: str) -> None:
    """rune create exited 1 with one line matching `pattern`, and left nothing behind."""
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.fullmatch(r'time="[^"]+" level=error msg="' + pattern + r'"\n', r.stderr), r.stderr
    assert not os.path.exists(os.path.join(state_root, cid))
    for secret in (SECRET, SUBSTITUTE):
        assert secret.decode() not in r.stdout + r.stderr


@pytest.fixture
def recording(tmp_path, hostile, enclave, state_root, tenant_kbs):
    """The bytes of one successful provisioning, as the (honest, recording) relay carried them."""
    path = str(tmp_path / "session.jsonl")
    r = hostile("record", {"recording": path}, "run", "--bundle", enclave, "recorded")
    assert r.returncode == 0, r.stderr
    assert SECRET.decode() in r.stdout  # the relay double carries a working session
    with open(path) as f:
        return path, [json.loads(line) for line in f]


def test_the_relay_carries_only_tls(recording, tenant_kbs):
    """What rune on the host sees of a provisioning: TLS records, no HTTP, cookie, token, JWE or secret."""
    by_conn: dict[int, dict[str, bytes]] = {}
    for r in recording[1]:
        by_conn.setdefault(r["conn"], {"c2s": b"", "s2c": b""})[r["dir"]] += base64.b64decode(r["data"])
    assert by_conn
    for streams in by_conn.values():
        assert streams["c2s"][:2] == b"\x16\x03"  # a TLS handshake record (RFC 8446 §5.1): ClientHello
        assert streams["s2c"][:2] == b"\x16\x03"
        seen = streams["c2s"] + streams["s2c"]
        for clear in (b"HTTP/1.", b"/kbs/v0/", b"kbs-session-id", b"tee-pubkey", b"encrypted_key", b"eyJhbGci", SECRET):
            assert clear not in seen


def test_replayed_session_is_refused(recording, hostile, enclave, state_root, tenant_kbs, world):
    before = len(audit(tenant_kbs, world, "attest"))
    r = hostile("replay", {"recording": recording[0]}, "create", "--bundle", enclave, "replayed")
    refused(r, state_root, "replayed", r"secret provisioning: https://127\.0\.0\.1:\d+: TLS handshake failed: [^\n]+")
    assert len(audit(tenant_kbs, world, "attest")) == before  # the broker never heard of it


def test_redirect_to_the_hosts_broker_is_refused_in_the_handshake(hostile, enclave, state_root, host_kbs, world):
    to = host_kbs.url.removeprefix("https://")
    r = hostile("redirect", {"to": to}, "create", "--bundle", enclave, "redirected")
    refused(r, state_root, "redirected",
            r"secret provisioning: https://127\.0\.0\.1:\d+: not the pinned broker: unable to get local issuer "
            r"certificate")  # fmt: skip
    assert audit(host_kbs, world, "attest") == []  # no evidence ever reached the host's broker


def test_redirect_by_annotation_is_refused_before_attesting(rune, enclave, state_root, host_kbs, tenant_kbs, world):
    annotations = {"enclave.kbs.url": host_kbs.url, "enclave.kbs.resources": "default/secret/greeting",
                   "enclave.kbs.insecure_unpinned": "true", "enclave.kbs.cacert": host_kbs.ca_file}  # fmt: skip
    set_enclave(enclave, "preopen=/run/secrets", annotations, ["/app/hello.wasm", "read=/run/secrets/greeting"])
    r = rune("create", "--bundle", enclave, "rewritten")
    assert r.returncode == 1
    lines = r.stderr.splitlines()  # the opt-out's warning, then the refusal: the pin wins
    assert len(lines) == 2, r.stderr
    assert "enclave.kbs.insecure_unpinned" in lines[0]
    want = (
        r"annotations\.enclave\.kbs\.url: https://127\.0\.0\.1:\d+ is not a broker the enclave's manifest pins "
        r"\(kbs\.urls: https://127\.0\.0\.1:\d+\); refused before attesting"
    )
    assert re.search(want, lines[1]), lines[1]
    assert not os.path.exists(os.path.join(state_root, "rewritten"))
    assert audit(host_kbs, world, "attest") == []


def test_substituted_secret_is_refused(tmp_path, hostile, enclave, state_root, tenant_kbs, world):
    config = _mitm(tmp_path, tenant_kbs)
    r = hostile("substitute", config, "create", "--bundle", enclave, "substituted")
    refused(r, state_root, "substituted",
            r"secret provisioning: https://127\.0\.0\.1:\d+: not the pinned broker: unable to get local issuer "
            r"certificate")  # fmt: skip


def _mitm(tmp_path, tenant_kbs) -> dict[str, str]:
    """The host's CA issues a certificate for the broker's own address: all a man in the middle needs,
    unless the enclave pins the tenant's CA."""
    host_ca = CertificateAuthority("the host's CA")
    os.makedirs(tmp_path / "mitm", exist_ok=True)
    cert, key = host_ca.write_server(str(tmp_path / "mitm"), "127.0.0.1")
    config = {"cert": cert, "key": key, "broker": tenant_kbs.url, "broker_ca": tenant_kbs.ca_file}
    with open(tmp_path / "mitm" / "ca.pem", "wb") as f:
        f.write(host_ca.pem)
    return {**config, "host_ca": str(tmp_path / "mitm" / "ca.pem")}


def test_the_man_in_the_middle_is_a_real_attack(tmp_path, hostile, enclave, tenant_key, tenant_kbs, world):
    """The control for the test above: an enclave that pinned the host's CA by mistake gets the host's secret
    from this very relay — so what stops the relay there is the pin, nothing else."""
    config = _mitm(tmp_path, tenant_kbs)
    with open(config["host_ca"], "rb") as f:
        pin_broker(enclave, tenant_key, [tenant_kbs.url], f.read())
    manifest = os.path.join(enclave, "rootfs/app/hello-wasm.toml")
    with tenant_kbs.admin(world) as admin:
        admin.add_from_enclave(manifest, manifest + ".sig", os.path.join(enclave, "rootfs"))
    r = hostile("substitute", config, "run", "--bundle", enclave, "mistaken")
    assert r.returncode == 0, r.stderr
    assert SUBSTITUTE.decode() in r.stdout
    assert SECRET.decode() not in r.stdout


def test_truncated_session_is_refused(hostile, enclave, state_root):
    r = hostile("truncate", {}, "create", "--bundle", enclave, "truncated")
    refused(r, state_root, "truncated",
            r"secret provisioning: KBS unreachable: (ReadError|RemoteProtocolError) talking to "
            r"https://127\.0\.0\.1:\d+/kbs/v0/auth[^\n]*")  # fmt: skip


def test_tampered_record_is_refused(hostile, enclave, state_root):
    r = hostile("tamper", {}, "create", "--bundle", enclave, "tampered")
    refused(r, state_root, "tampered",
            r"secret provisioning: the TLS session with the broker was tampered with: [^\n]+")  # fmt: skip


def test_the_demo_shows_a_redirect_failing():
    """`python -m inclavare.demo --hostile`: the documented command of docs/kbs.md, "Trust model"."""
    r = subprocess.run([sys.executable, "-m", "inclavare.demo", "--hostile"], capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "is not a broker the enclave's manifest pins" in r.stdout
    assert "not the pinned broker: unable to get local issuer certificate" in r.stdout
    assert "refused both times; the host's broker received no evidence and delivered nothing" in r.stdout
    assert "the host's substitute secret\n" not in r.stdout.replace("--value the host's substitute secret", "")
