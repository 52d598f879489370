"""``kbs serve`` under a service manager: sd_notify readiness on a real datagram socket, and JSON logs.

The broker is a child process (inclavare.testing.kbs.KbsProcess); the
"service manager" is a unix datagram socket this test binds and names in
``NOTIFY_SOCKET``, as systemd does for ``Type=notify`` (sd_notify(3)).
"""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.enclave.identity import HostKey
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.kbs.client import KbsClient
from inclavare.kbs.jwe import TeeKey
from inclavare.kbs.protocol.handshake import ClientHandshake
from inclavare.testing.kbs import KbsProcess, World

SECRET = b"json-logs-must-not-hold-this \x00\xff"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-serve-ops")))


def notify_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path if path[0] == "/" else "\0" + path[1:])
    sock.settimeout(30)
    return sock


@pytest.mark.parametrize("where", ["path", "abstract"])
def test_ready_is_sent_once_listening_and_stopping_on_the_way_out(world, tmp_path, where):
    path = str(tmp_path / "notify") if where == "path" else f"@inclavare-kbs-test-{uuid.uuid4().hex}"
    with notify_socket(path) as manager:
        kbs = KbsProcess(world.config(f"notify-{where}"), env={"NOTIFY_SOCKET": path})
        try:
            ready = manager.recv(4096).decode().split("\n")
            assert ready[0] == "READY=1"
            assert ready[1] == f"STATUS=listening on {kbs.url}"
            assert httpx.get(f"{kbs.url}/healthz").text == "ok"  # READY meant what it says
        finally:
            kbs.stop()
        assert manager.recv(4096) == b"STOPPING=1"
    assert kbs.proc.returncode == 0  # SIGTERM ended in serve's cleanup, not in the default handler's death


def test_with_workers_the_supervisor_alone_tells_systemd(world, tmp_path):
    """systemd listens to the main process only (NotifyAccess=main in deploy/systemd): READY=1 comes
    once, from the supervisor, and no worker sends its own."""
    path = str(tmp_path / "notify")
    with notify_socket(path) as manager:
        config = world.config("notify-workers", extra="\n[rate_limit]\nenabled = false\n")
        kbs = KbsProcess(config, env={"NOTIFY_SOCKET": path}, args=("--workers", "2"))
        try:
            ready = manager.recv(4096).decode().split("\n")
            assert ready == ["READY=1", f"STATUS=listening on {kbs.url} with 2 workers"]
            assert httpx.get(f"{kbs.url}/healthz").text == "ok"
            manager.settimeout(1.5)
            with pytest.raises(TimeoutError):
                manager.recv(4096)  # a worker's READY would arrive here
            manager.settimeout(30)
        finally:
            kbs.stop()
        assert manager.recv(4096) == b"STOPPING=1"
    assert kbs.proc.returncode == 0


def test_an_unusable_notify_socket_is_logged_not_fatal(world, tmp_path):
    kbs = KbsProcess(world.config("notify-gone"), env={"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    try:
        assert httpx.get(f"{kbs.url}/healthz").text == "ok"
    finally:
        kbs.stop()
    assert "systemd was not told READY=1" in kbs.log()


def test_json_logs_are_one_object_a_line_with_request_ids_and_no_secrets(world):
    kbs = KbsProcess(world.config("json", extra="\n[rate_limit]\nenabled = false\n"), args=("--log-format", "json"))
    try:
        with KbsAdmin(kbs.url, world.admin_key) as admin:
            admin.set_resource("default/key/db", SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        with KbsClient([kbs.url], SoftwareAttester(world.identity, world.host_key)) as client:
            assert client.get_resource("default/key/db") == SECRET
            token, cookie = client.token, client._cookie
        untrusted = SoftwareAttester(world.identity, HostKey.from_seed(bytes(32)))
        hs = ClientHandshake("software", TeeKey.generate().public_jwk())
        with httpx.Client(base_url=kbs.url) as http:
            challenge = http.post("/kbs/v0/auth", json=hs.request())
            body = hs.attestation(untrusted.collect_evidence(hs.challenge(challenge.json())).data)
            refused = http.post("/kbs/v0/attest", json=body)
        assert refused.json()["detail"] == "attestation failed: no trusted host key"
        request_id = refused.headers["x-request-id"]
    finally:
        kbs.stop()
    text = kbs.log()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("Z")
    [why] = [line for line in lines if line.get("request_id") == request_id and line["level"] == "warning"]
    assert (why["logger"], why["method"], why["route"]) == ("inclavare.kbs", "POST", "/kbs/v0/attest")
    assert "no trusted host key" in why["message"]
    assert any(line["logger"] == "inclavare.kbs.audit" for line in lines)
    for secret in (SECRET.decode(errors="replace")[:20], str(token), str(cookie)):
        assert secret not in text
