"""The broker's OCI image (``inclavare kbs build-image``), unpacked into a bundle and run by rune.

Built offline from this machine's Python (cli/tool/kbs_image.py), unpacked with
inclavare's image tooling, started with ``rune run`` on the host's network
with the config bind-mounted read-only at /etc/inclavare; the test reaches
/healthz, then attests and fetches a resource through the containerised
broker, and stops it with SIGTERM (a clean exit, JSON logs on its stderr).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.cli.tool import kbs_image as image
from inclavare.image.unpack import unpack
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.kbs.client import attest_and_fetch
from inclavare.testing.kbs import World

pytestmark = pytest.mark.root
SECRET = b"served from an image"


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("kbs-image") / "layout")
    start = time.monotonic()
    image.build(out, "test")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(f"\nkbs image: built in {time.monotonic() - start:.1f} s, {size / 1e6:.0f} MB")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def etc_inclavare(world: World, directory: str, port: int) -> None:
    """What the container sees at /etc/inclavare: the config and its keys, owned by the image's user."""
    os.makedirs(directory)
    for name in ("kek", "token.pem", "admin.pub.pem", "host-key.pub.pem"):
        shutil.copy(f"{world.root}/{name}", f"{directory}/{name}")
    with open(f"{directory}/kbs.toml", "w") as f:
        f.write(f"""\
[http]
listen = "127.0.0.1:{port}"
[attestation]
collateral = ["/etc/inclavare/host-key.pub.pem"]
policy = "allow-software"
[token]
signing_key = "/etc/inclavare/token.pem"
[storage]
path = "{image.STATE}/kbs.db"
[storage.kek]
file = "/etc/inclavare/kek"
[[admin.keys]]
name = "ops"
public_key = "/etc/inclavare/admin.pub.pem"
[rate_limit]
enabled = false
""")
    for name in os.listdir(directory):
        os.chown(f"{directory}/{name}", image.UID, image.UID)
        os.chmod(f"{directory}/{name}", 0o600 if name in ("kek", "token.pem") else 0o644)


def test_the_image_serves_with_rune(layout, tmp_path, rune_fg, rune):
    world = World.create(str(tmp_path / "world"))
    bundle, port = str(tmp_path / "bundle"), free_port()
    unpack(layout, "test", bundle)
    etc_inclavare(world, str(tmp_path / "etc"), port)
    with open(f"{bundle}/config.json") as f:
        spec = json.load(f)
    assert spec["process"]["args"][:3] == [f"{image.VENV}/bin/inclavare", "kbs", "serve"]
    assert spec["process"]["user"]["uid"] == image.UID  # not root in the container
    site = os.listdir(f"{bundle}/rootfs{image.VENV}/lib/python3.{sys.version_info.minor}/site-packages")
    assert {"inclavare", "starlette", "uvicorn", "regopy", "psycopg", "psycopg_binary"} <= set(site)
    assert not {"pytest", "mypy", "ruff", "hypothesis"} & set(site)  # what [kbs] needs, not the dev tools
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    spec["mounts"].append({"destination": "/etc/inclavare", "type": "bind", "source": str(tmp_path / "etc"),
                           "options": ["rbind", "ro"]})  # fmt: skip
    with open(f"{bundle}/config.json", "w") as f:
        json.dump(spec, f)

    err = open(tmp_path / "kbs.err", "w+b")  # noqa: SIM115 - read after the container stops
    proc = rune_fg("run", "--bundle", bundle, "kbs-image", stdout=subprocess.DEVNULL, stderr=err)
    url, start = f"http://127.0.0.1:{port}", time.monotonic()
    while True:
        assert proc.poll() is None, (tmp_path / "kbs.err").read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=2).text == "ok":
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() - start < 60, "the containerised broker did not answer /healthz in 60 s"
        time.sleep(0.1)
    print(f"\nkbs image: rune run to /healthz in {time.monotonic() - start:.2f} s")

    with KbsAdmin(url, world.admin_key) as admin:
        admin.set_resource("default/key/db", SECRET)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
    attester = SoftwareAttester(world.identity, world.host_key)
    assert attest_and_fetch(url, attester, ["default/key/db"]) == {"default/key/db": SECRET}

    assert rune("kill", "kbs-image", "TERM").returncode == 0
    assert proc.wait(30) == 0
    err.seek(0)
    logged = [json.loads(line) for line in err.read().decode().splitlines()]
    assert any("listening on http://127.0.0.1" in line["message"] for line in logged)
    assert SECRET.decode() not in json.dumps(logged)
    err.close()
