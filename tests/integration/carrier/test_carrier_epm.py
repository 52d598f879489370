"""`inclavare carrier prepare` twice against a running `inclavare epm serve`: the second pod of the
same image and signer is served from the bundle caches — the signing server signs nothing (its audit
log stays as it was) — and runs as the first did."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import INCLAVARE, inclavare
from inclavare.carrier import MANIFEST, SIGNATURE

pytestmark = pytest.mark.root


@pytest.fixture
def epm_serve(tmp_path):
    """`inclavare epm serve` in a process of its own; yields its socket."""
    run = tempfile.mkdtemp(prefix="epm-", dir="/tmp")
    socket = os.path.join(run, "run", "epm.sock")
    config = tmp_path / "epm.toml"
    config.write_text(f'root = "{tmp_path}/epm-root"\n[grpc]\naddress = "{socket}"\n')
    log = open(tmp_path / "epm.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*INCLAVARE, "epm", "serve", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 30
    while inclavare("epm", "health", "--socket", socket, check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"epm did not start: {log.read()}")
        time.sleep(0.1)
    yield socket
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    log.close()
    assert not os.path.exists(socket)  # removed on the way out
    shutil.rmtree(run, ignore_errors=True)


def read(bundle: str, path: str) -> bytes:
    with open(os.path.join(bundle, "rootfs", path.lstrip("/")), "rb") as f:
        return f.read()


def test_the_second_pod_is_served_from_the_bundle_caches(rune, image_bundle, carrier_config, signing_server,
                                                         epm_serve, tmp_path):  # fmt: skip
    config = carrier_config()
    with open(config, "a") as f:
        f.write(f'[epm]\nsocket = "{epm_serve}"\n')
    first = image_bundle("wasm", ["one", "exit=3"], name="pod-1")
    inclavare("carrier", "prepare", "--config", config, first)
    signed = len(signing_server.audit_lines())
    second = image_bundle("wasm", ["one", "exit=3"], name="pod-2")
    r = inclavare("carrier", "prepare", "--config", config, second)
    assert f"signed by the signing server {signing_server.url}, from the bundle cache" in r.stderr
    assert len(signing_server.audit_lines()) == signed  # nothing signed for the second pod
    assert (read(second, MANIFEST), read(second, SIGNATURE)) == (read(first, MANIFEST), read(first, SIGNATURE))
    listed = inclavare("epm", "list", "bundle-cache.wasm.cache2", "--socket", epm_serve).stdout.splitlines()
    assert len(listed) == 1
    env = {**os.environ, "INCLAVARE_WASM_CACHE": str(tmp_path / "wasm-cache")}
    r = rune("run", "--bundle", second, "from-cache", env=env)
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines()[:2] == ["argv[0]=/app/hello.wasm", "argv[1]=one"]


def test_epm_down_the_carrier_builds_and_signs(image_bundle, carrier_config, signing_server, tmp_path):
    config = carrier_config()
    with open(config, "a") as f:
        f.write(f'[epm]\nsocket = "{tmp_path}/no-epm.sock"\n')
    signed = len(signing_server.audit_lines())
    bundle = image_bundle("wasm", name="pod-3")
    r = inclavare("carrier", "prepare", "--config", config, bundle)
    assert len(signing_server.audit_lines()) == signed + 1
    assert "bundle cache" not in r.stderr  # one debug line, not shown at the default level
