"""Privilege control of real containers: capabilities, no_new_privs, user,
rlimits, LSM labels, personality, time namespace offsets, intelRdt."""

from __future__ import annotations

import os

import pytest

from inclavare._sys import consts
from inclavare.testing.bundles import base_config

pytestmark = pytest.mark.root


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def mask(names: list[str]) -> int:
    return sum(1 << consts.CAP_BITS[n] for n in names)


def test_capability_sets_and_no_new_privs(rune, bundle):
    cfg = base_config(["cat", "/proc/self/status"])
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                                      "inheritable": caps[:2], "ambient": caps[:1]}  # fmt: skip
    cfg["process"]["user"] = {"uid": 10, "gid": 10}
    cfg["process"]["noNewPrivileges"] = True
    out = status_fields(rune("run", "--bundle", bundle(cfg), "caps", check=True).stdout)
    assert int(out["CapBnd"], 16) == mask(caps)
    assert int(out["CapAmb"], 16) == mask(caps[:1])
    assert int(out["CapInh"], 16) == mask(caps[:2])
    # non-root after execve: permitted = effective = ambient (capabilities(7))
    assert int(out["CapPrm"], 16) == mask(caps[:1])
    assert out["NoNewPrivs"].strip() == "1"
    assert out["Uid"].split()[:2] == ["10", "10"]


def test_user_groups_umask_rlimits(rune, bundle):
    cfg = base_config(["sh", "-c", "id -G; umask; ulimit -n; ulimit -Hn"])
    cfg["process"]["user"] = {"uid": 10, "gid": 10, "additionalGids": [5, 20], "umask": 0o27}
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 300}]
    out = rune("run", "--bundle", bundle(cfg), "user", check=True).stdout.split()
    assert sorted(out[0:3]) == ["10", "20", "5"]
    assert out[3:] == ["0027", "200", "300"]


def test_unknown_capability_is_refused(rune, bundle, state_root):
    cfg = base_config(["true"])
    cfg["process"]["capabilities"]["bounding"].append("CAP_TEST")
    r = rune("create", "--bundle", bundle(cfg), "badcap")
    assert r.returncode == 1
    assert "process.capabilities.bounding[3]: unknown capability 'CAP_TEST'" in r.stderr
    assert not os.path.exists(os.path.join(state_root, "badcap"))


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("process", "apparmorProfile", "docker-default", "AppArmor is not enabled on this host"),
        ("process", "selinuxLabel", "system_u:system_r:container_t:s0", "SELinux is not enabled on this host"),
        ("linux", "intelRdt", {"closID": "x", "l3CacheSchema": "L3:0=f"}, "this host has no Intel RDT"),
    ],
)
def test_unavailable_isolation_is_an_error_not_a_no_op(rune, bundle, state_root, section, key, value, message):
    if key == "apparmorProfile" and os.path.exists("/sys/module/apparmor"):
        pytest.skip("this host has AppArmor")
    cfg = base_config(["true"])
    cfg[section][key] = value
    r = rune("create", "--bundle", bundle(cfg), "lsm")
    assert r.returncode == 1
    assert message in r.stderr
    assert not os.path.exists(os.path.join(state_root, "lsm"))


def test_personality(rune, bundle):
    cfg = base_config(["uname", "-m"])
    cfg["linux"]["personality"] = {"domain": "LINUX32"}
    assert rune("run", "--bundle", bundle(cfg), "pers", check=True).stdout.strip() in ("i686", "i386")


def test_time_namespace_offsets(rune, bundle):
    cfg = base_config(["cat", "/proc/uptime"])
    cfg["linux"]["namespaces"].append({"type": "time"})
    cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    uptime = float(rune("run", "--bundle", bundle(cfg), "timens", check=True).stdout.split()[0])
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert uptime - host > 86400 * 364
