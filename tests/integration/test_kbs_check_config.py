"""``kbs check-config`` loads what ``kbs serve`` loads: it fails, with the same line, wherever serve would.

Each broken config is given to both commands as a user runs them; before,
check-config parsed the TOML and loaded the KEKs only, and said ``ok`` to a
collateral file, a TLS pair, a token key or a database serve then refused.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from inclavare.testing.kbs import KbsProcess, World


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "inclavare.cli.tool._main", *args]
    return subprocess.run(cmd, capture_output=True, timeout=60, text=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-check")))


def _config(world: World, name: str, old: str, new: str) -> str:
    path = world.config(name)
    with open(path) as f:
        text = f.read()
    assert old in text
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))
    return path


def _broken(world: World, case: str) -> tuple[str, str]:
    """(config, what the refusal names)"""
    root = world.root
    if case == "collateral":
        with open(f"{root}/junk.pem", "w") as f:
            f.write("-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----\n")
        return _config(world, case, "host-key.pub.pem", "junk.pem"), "attestation.collateral: "
    if case == "tls":
        tls = f'[http]\ntls_cert = "{root}/admin.pub.pem"\ntls_key = "{root}/admin.pem"\n'
        return _config(world, case, "[http]\n", tls), "http.tls_cert: "
    if case == "token":
        return _config(world, case, f"{root}/token.pem", f"{root}/admin.pub.pem"), "token.signing_key: "
    assert case == "wrong-kek"  # a database written under another KEK
    other = f"{root}/kek-other"
    with open(other, "w") as f:
        f.write(os.urandom(32).hex())
    os.chmod(other, 0o600)
    config = _config(world, case, f'file = "{world.kek}"', f'file = "{other}"')
    KbsProcess(config).stop()  # creates the database under kek-other
    return world.config(case), "storage.kek: wrong key"  # the same database, the world's KEK


@pytest.mark.parametrize("case", ["collateral", "tls", "token", "wrong-kek"])
def test_check_config_fails_where_serve_fails(world, case):
    config, names = _broken(world, case)
    checked = run("kbs", "check-config", config)
    served = run("kbs", "serve", "--config", config)
    assert served.returncode == 1, served.stderr
    assert checked.returncode == 1, checked.stdout
    assert names in checked.stderr
    assert checked.stderr.count("\n") == 1
    assert "Traceback" not in checked.stderr + served.stderr
    assert served.stderr.strip().splitlines()[-1] == checked.stderr.strip()


def test_the_json_host_key_prints_is_collateral_for_both(world, tmp_path):
    printed = run("enclave", "host-key", "--path", f"{world.root}/host-key.pem", "--format", "json")
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "host-key.json").write_text(printed.stdout)
    pem = run("enclave", "host-key", "--path", f"{world.root}/host-key.pem", "--format", "pem")
    assert pem.stdout == world.host_key.public_pem.decode()
    config = _config(world, "json-key", f"{world.root}/host-key.pub.pem", str(tmp_path / "host-key.json"))
    checked = run("kbs", "check-config", config)
    assert checked.returncode == 0, checked.stderr
    assert "collateral: 1 host key(s)" in checked.stdout
    KbsProcess(config).stop()  # serve starts with it
    (tmp_path / "host-key.json").write_text(printed.stdout.replace(world.host_key.key_id.hex(), "ab" * 32))
    refused = run("kbs", "check-config", config)
    assert "is not the id of public_key" in refused.stderr
