"""deploy/systemd/inclavare-kbs.service: what it runs is what the CLI accepts, and its sandbox holds.

The unit's command lines are parsed by ``inclavare kbs``'s own argument
parser (a renamed flag breaks this test, not a deployment), the hardening
directives are checked one by one, and, where systemd's tools are installed,
``systemd-analyze verify`` must accept the unit and ``systemd-analyze
security`` rate it at most 2.0 (0 is fully sandboxed, 10 not at all).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inclavare.cli.tool.kbs import _parser

UNIT = Path(__file__).resolve().parents[3] / "deploy/systemd/inclavare-kbs.service"
SYSUSERS = UNIT.with_name("inclavare-kbs.sysusers")
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "PrivateUsers": "yes", "PrivateMounts": "yes", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes",
    "ProtectHostname": "yes", "ProtectProc": "invisible", "ProcSubset": "pid", "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "RemoveIPC": "yes",
    "SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "AmbientCapabilities": "", "UMask": "0077",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
}  # fmt: skip


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_it_is_a_notify_service_running_what_the_cli_accepts():
    d = directives()
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    serve = _parser().parse_args(shlex.split(d["ExecStart"][0])[2:])
    assert (serve.cmd, serve.config, serve.log_format) == ("serve", "/etc/inclavare/kbs.toml", "json")
    check = _parser().parse_args(shlex.split(d["ExecStartPre"][0])[2:])
    assert (check.cmd, check.config) == ("check-config", serve.config)
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP reloads storage.kek (kbs/server/serve.py)
    assert d["User"] == ["inclavare-kbs"]
    assert re.search(r"^u inclavare-kbs ", SYSUSERS.read_text(), re.M)


def test_the_sandbox_directives_are_set():
    d = directives()
    for key, value in HARDENING.items():
        assert d.get(key) == [value], key
    assert d["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    credentials = {v.split(":")[0] for v in d["LoadCredential"]}
    assert credentials == {"kek", "token.pem", "tls.key"}  # keys reach the service as credentials only
    text = UNIT.read_text()
    assert all(f"/run/credentials/inclavare-kbs.service/{c}" in text for c in credentials)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit_and_rates_its_exposure(tmp_path):
    # verify wants the commands to exist: point them at this checkout's inclavare
    inclavare = Path(sys.executable).with_name("inclavare")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/inclavare", str(inclavare)))
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""
    rated = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)], capture_output=True, text=True
    )
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", rated.stdout)
    assert score is not None, rated.stdout + rated.stderr
    assert float(score[1]) <= 2.0, rated.stdout
