"""Containers whose enclave comes from the warm pool (enclave/pool/): the same
container as without the pool — exit status, output, signals, `rune exec`,
`rune attest`, the process identity, namespaces and cgroups — and never an
instance prepared for another enclave. Each pool here is a real instance
process (inclavare.enclave.pool.instance) behind tests' minimal claim server."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.attestation import software
from inclavare.enclave.identity import DEFAULT_HOST_KEY, HostKey
from inclavare.testing.containers import wait_status
from inclavare.testing.enclaves import native_bundle, set_enclave, wasm_bundle

pytestmark = pytest.mark.root
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PROGRAM = {"wasm": "/app/hello.wasm", "native": "/app/hello"}


@pytest.fixture
def make(tmp_path, rootfs_cache):
    """make(runtime, args, user=0) -> a signed sample enclave bundle running `args`."""
    count = [0]

    def build(runtime: str, args: list[str], user: int = 0) -> str:
        count[0] += 1
        where = str(tmp_path / f"{runtime}{count[0]}")
        if runtime == "wasm":
            bundle, _ = wasm_bundle(where, KEY, rootfs_cache)
            set_enclave(bundle, args=[PROGRAM[runtime], *args])
        else:
            bundle, _ = native_bundle(where, KEY, rootfs_cache, [PROGRAM[runtime], *args])
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["process"]["user"] = {"uid": user, "gid": user}
        with open(path, "w") as f:
            json.dump(cfg, f)
        return bundle

    return build


@pytest.fixture
def runner(rune, state_root):
    """runner(config) -> a rune like the `rune` fixture's, reading node config `config`."""
    made = []

    def make_runner(config: str):
        r = type(rune)(state_root, config)
        made.append(r)
        return r

    yield make_runner
    for r in made:
        r.cleanup()


def pool_of(rune, cid: str) -> str:
    return json.loads(rune("state", cid, check=True).stdout)["enclave"].get("pool", "")


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_a_pooled_container_runs_as_an_unpooled_one(make, pool_for, runner, runtime):
    b = make(runtime, ["one", "exit=3"])
    pool, config = pool_for(b, 1)
    r = runner(config)
    pooled = r("run", "--bundle", b, "pooled")
    assert pooled.returncode == 3, pooled.stderr
    assert pool.claims
    assert not pool.ready
    unpooled = r("run", "--bundle", b, "unpooled")  # the pool is empty now: the path without it
    assert unpooled.returncode == 3, unpooled.stderr
    assert pooled.stdout == unpooled.stdout
    assert "argv[1]=one" in pooled.stdout


def test_state_says_hit_or_miss(make, pool_for, runner):
    b = make("wasm", ["sleep=30"])
    _, config = pool_for(b, 1)
    r = runner(config)
    r("create", "--bundle", b, "first", check=True)
    r("create", "--bundle", b, "second", check=True)
    assert (pool_of(r, "first"), pool_of(r, "second")) == ("hit", "miss")


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_attest_gives_the_same_identity_pooled_or_not(make, pool_for, runner, tmp_path, runtime):
    b = make(runtime, ["sleep=60"])
    _, config = pool_for(b, 1)
    r = runner(config)
    found = {}
    for cid in ("att-pooled", "att-unpooled"):
        r("run", "-d", "--bundle", b, cid, check=True)
        report = tmp_path / f"{cid}.bin"
        r("attest", "--reportFile", str(report), cid, check=True)
        evidence = software.verify_report(report.read_bytes(), [HostKey.load_or_create(DEFAULT_HOST_KEY).public_key])
        found[pool_of(r, cid)] = (evidence.measurement, evidence.signer, evidence.software)
    assert found["hit"] == found["miss"]


@pytest.mark.parametrize("runtime", ["wasm", "native"])
def test_exec_and_signals_reach_the_pooled_enclave(make, pool_for, runner, runtime):
    b = make(runtime, ["sleep=60"])
    _, config = pool_for(b, 1)
    r = runner(config)
    r("run", "-d", "--bundle", b, "sig", check=True)
    assert pool_of(r, "sig") == "hit"
    done = r("exec", "sig", PROGRAM[runtime], "exec", "exit=9")
    assert done.returncode == 9, done.stderr
    assert "argv[1]=exec" in done.stdout
    r("kill", "sig", "TERM", check=True)
    wait_status(r, "sig", "stopped")


def test_the_guest_is_inside_the_container(make, pool_for, runner):
    """Its pid namespace, mount namespace and root, cgroup, user and seccomp are the container's."""
    b = make("wasm", ["sleep=60"], user=1000)
    path = os.path.join(b, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["noNewPrivileges"] = True
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]}  # fmt: skip
    with open(path, "w") as f:
        json.dump(cfg, f)
    _, config = pool_for(b, 1)
    r = runner(config)
    r("run", "-d", "--bundle", b, "inside", check=True)
    init = json.loads(r("state", "inside", check=True).stdout)["pid"]
    pids = [int(p) for p in r("ps", "--format", "json", "inside", check=True).stdout.strip("[]\n").split(",")]
    guests = [p for p in pids if p != init]
    assert len(guests) == 1, pids  # init and the guest (the wasm module runs in a thread of it)
    guest = guests[0]
    for ns in ("pid", "mnt", "ipc", "uts", "net", "cgroup"):
        assert os.readlink(f"/proc/{guest}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
    assert _same(f"/proc/{guest}/root", f"/proc/{init}/root")
    with open(f"/proc/{guest}/cgroup") as f, open(f"/proc/{init}/cgroup") as g:
        assert f.read() == g.read()
    fields = _status(guest)
    assert fields["Uid"].split()[:2] == ["1000", "1000"]
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"
    assert int(fields["CapEff"], 16) == int(_status(init)["CapEff"], 16)
    r("kill", "inside", "KILL", check=True)
    wait_status(r, "inside", "stopped")
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{guest}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{guest}")  # gone with the container's pid namespace


def test_a_pool_never_serves_another_enclave(make, pool_for, runner, tmp_path, rootfs_cache):
    a = make("wasm", ["sleep=30"])
    pool, config = pool_for(a, 2)
    other, _ = wasm_bundle(str(tmp_path / "other"), KEY, rootfs_cache, variant=b"x")  # another measurement
    set_enclave(other, args=[PROGRAM["wasm"], "sleep=30"])
    r = runner(config)
    r("create", "--bundle", other, "other", check=True)
    assert pool_of(r, "other") == "miss"
    assert len(pool.ready) == 2  # nothing was handed out for it


def test_a_tampered_rootfs_is_refused_by_the_guest(make, pool_for, runner, state_root):
    """Same manifest and signature bytes (the key matches), another module in the container's
    rootfs: the guest's own verification refuses it; the container is not made."""
    b = make("wasm", ["exit=0"])
    pool, config = pool_for(b, 1)
    with open(os.path.join(b, "rootfs/app/hello.wasm"), "ab") as f:
        f.write(b"\0")
    r = runner(config)
    done = r("create", "--bundle", b, "tampered")
    assert done.returncode == 1
    assert re.fullmatch(r"[^\n]*hello\.wasm[^\n]*\n", done.stderr), done.stderr
    assert pool.claims
    assert not pool.ready
    assert not os.path.exists(os.path.join(state_root, "tampered"))


def test_a_dead_instance_fails_the_create_cleanly_and_the_next_falls_back(make, pool_for, runner, state_root):
    b = make("wasm", ["exit=4"])
    pool, config = pool_for(b, 1)
    for _, proc, _ in pool.ready:
        proc.send_signal(signal.SIGKILL)  # epm's instance dies while the claim is on its way
        proc.wait()
    r = runner(config)
    done = r("create", "--bundle", b, "halfway")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "enclave pool" in done.stderr
    assert not os.path.exists(os.path.join(state_root, "halfway"))
    pool.close()  # epm is down now
    again = r("run", "--bundle", b, "fallback")
    assert again.returncode == 4, again.stderr


def _same(a: str, b: str) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def test_secrets_are_provisioned_through_a_pooled_instance(make, pool_for, runner, tmp_path, rootfs_cache):
    from inclavare.testing import kbs as kbs_testing
    from inclavare.testing.enclaves import pin_broker
    from inclavare.testing.kbs import TlsBroker

    secret = b"pooled and provisioned"
    world = kbs_testing.World.create(str(tmp_path / "world"))
    broker = TlsBroker(world, "pool-kbs")
    try:
        bundle, _ = wasm_bundle(str(tmp_path / "prov"), KEY, rootfs_cache)
        pin_broker(bundle, KEY, [broker.url], broker.ca.pem)
        manifest = os.path.join(bundle, "rootfs/app/hello-wasm.toml")
        with broker.admin(world) as admin:
            admin.set_resource("default/secret/greeting", secret)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(manifest, manifest + ".sig", os.path.join(bundle, "rootfs"))
        set_enclave(bundle, "preopen=/run/secrets", args=["/app/hello.wasm", "read=/run/secrets/greeting"],
                    annotations={"enclave.kbs.url": broker.url,
                                 "enclave.kbs.resources": "default/secret/greeting"})  # fmt: skip
        _, config = pool_for(bundle, 1)
        r = runner(config)
        r("create", "--bundle", bundle, "prov", check=True)
        assert pool_of(r, "prov") == "hit"
        r("delete", "-f", "prov", check=True)
        _, config = pool_for(bundle, 1)
        done = runner(config)("run", "--bundle", bundle, "prov-run")
        assert done.returncode == 0, done.stderr
        assert secret.decode() in done.stdout
        assert secret.decode() not in done.stderr
    finally:
        broker.stop()


def test_a_user_namespace_and_oom_score_reach_the_guest(make, pool_for, runner):
    top = tempfile.mkdtemp(prefix="pool-userns-", dir="/tmp")  # mapped root must reach the rootfs
    os.chmod(top, 0o755)
    b = shutil.copytree(make("wasm", ["sleep=60"]), os.path.join(top, "bundle"), symlinks=True)
    path = os.path.join(b, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    cfg["process"]["oomScoreAdj"] = 123
    with open(path, "w") as f:
        json.dump(cfg, f)
    _, config = pool_for(b, 1)
    r = runner(config)
    r("run", "-d", "--bundle", b, "userns", check=True)
    assert pool_of(r, "userns") == "hit"
    init = json.loads(r("state", "userns", check=True).stdout)["pid"]
    pids = [int(p) for p in r("ps", "--format", "json", "userns", check=True).stdout.strip("[]\n").split(",")]
    (guest,) = [p for p in pids if p != init]
    assert os.readlink(f"/proc/{guest}/ns/user") == os.readlink(f"/proc/{init}/ns/user")
    assert _status(guest)["Uid"].split()[0] == "200000"  # container root, as the host sees it
    with open(f"/proc/{guest}/oom_score_adj") as f:
        assert f.read().strip() == "123"
    done = r("exec", "userns", PROGRAM["wasm"], "exec", "exit=6")
    assert done.returncode == 6, done.stderr
    r("delete", "--force", "userns", check=True)
    shutil.rmtree(top)


def test_a_time_namespace_is_not_pooled(make, pool_for, runner):
    b = make("wasm", ["exit=0"])
    path = os.path.join(b, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["linux"]["namespaces"].append({"type": "time"})
    with open(path, "w") as f:
        json.dump(cfg, f)
    pool, config = pool_for(b, 1)
    r = runner(config)
    done = r("--debug", "create", "--bundle", b, "timens")
    if done.returncode != 0 and "time" in done.stderr and "not" in done.stderr:
        pytest.skip(f"no time namespaces here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert pool_of(r, "timens") == "miss"
    assert "a time namespace applies to children only" in done.stderr
    assert len(pool.ready) == 1


def test_a_container_without_its_own_mount_namespace_is_not_pooled(make, pool_for, runner):
    """Its root is only init's chroot: a guest joining its namespaces would stay at the host's root
    (found by review: the workload ran at the host's /)."""
    b = make("wasm", ["sleep=20"])
    path = os.path.join(b, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    cfg["linux"].pop("maskedPaths", None)
    cfg["linux"].pop("readonlyPaths", None)
    cfg["mounts"] = [m for m in cfg.get("mounts", []) if m["destination"] == "/proc"]
    cfg["root"]["readonly"] = False
    with open(path, "w") as f:
        json.dump(cfg, f)
    pool, config = pool_for(b, 1)
    r = runner(config)
    done = r("--debug", "create", "--bundle", b, "nomnt")
    assert done.returncode == 0, done.stderr
    assert pool_of(r, "nomnt") == "miss"
    assert "no mount namespace of its own" in done.stderr
    assert not pool.claims


def test_a_device_node_in_the_image_is_never_opened_for_the_key(make, pool_for, runner):
    """rune create reads the manifest and signature as host root: a device node there (an image
    layer may carry one) must not be opened — /dev/kmsg here (found by review)."""
    b = make("wasm", ["exit=0"])
    pool, config = pool_for(b, 1)
    sig = os.path.join(b, "rootfs/app/hello-wasm.toml.sig")
    os.unlink(sig)
    os.mknod(sig, 0o600 | stat.S_IFCHR, os.makedev(1, 11))
    r = runner(config)
    done = r("--debug", "create", "--bundle", b, "devnode")
    assert "enclave pool: miss (enclave pool: /app/hello-wasm.toml.sig: not a regular file)" in done.stderr
    assert not pool.claims


def test_a_large_environment_is_handed_over(make, pool_for, runner):
    """The handoff carries the process spec: 250 KB of environment is more than one datagram
    (found by review: EMSGSIZE, and the instance was used up)."""
    b = make("wasm", ["exit=0"])
    path = os.path.join(b, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["env"] += [f"BIG{i}={'x' * 240}" for i in range(1000)]
    with open(path, "w") as f:
        json.dump(cfg, f)
    _, config = pool_for(b, 1)
    r = runner(config)
    r("create", "--bundle", b, "bigenv", check=True)
    assert pool_of(r, "bigenv") == "hit"
    r("start", "bigenv", check=True)
    wait_status(r, "bigenv", "stopped")


def test_a_killed_guest_is_a_process_killed_by_sigkill(make, pool_for, runner):
    """The OOM killer picks the guest (the enclave's memory is there): the container exits 137
    as it would unpooled, in at most one line (found by review: exit 1 and two lines)."""
    b = make("wasm", ["sleep=60"])
    _, config = pool_for(b, 1)
    r = runner(config)
    fg = subprocess.Popen([*_rune_cmd(r), "run", "--bundle", b, "oom"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)  # fmt: skip
    wait_status(r, "oom", "running")
    init = json.loads(r("state", "oom", check=True).stdout)["pid"]
    pids = [int(p) for p in r("ps", "--format", "json", "oom", check=True).stdout.strip("[]\n").split(",")]
    (guest,) = [p for p in pids if p != init]
    os.kill(guest, signal.SIGKILL)
    _, err = fg.communicate(timeout=30)
    assert fg.returncode == 128 + signal.SIGKILL, err
    assert err.decode().count("\n") <= 1, err


def test_the_guest_inherits_what_init_inherited(make, pool_for, runner):
    """rlimits the spec does not name, like RLIMIT_MSGQUEUE here, come from rune's caller, not epm
    (found by review)."""
    b = make("wasm", ["sleep=60"])
    _, config = pool_for(b, 1)
    r = runner(config)

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (321000, 654000))

    r("run", "-d", "--bundle", b, "limits", check=True, preexec_fn=lowered)
    init = json.loads(r("state", "limits", check=True).stdout)["pid"]
    pids = [int(p) for p in r("ps", "--format", "json", "limits", check=True).stdout.strip("[]\n").split(",")]
    (guest,) = [p for p in pids if p != init]
    assert resource.prlimit(guest, resource.RLIMIT_MSGQUEUE) == (321000, 654000)
    for which in (resource.RLIMIT_NOFILE, resource.RLIMIT_MSGQUEUE, resource.RLIMIT_STACK, resource.RLIMIT_CORE):
        assert resource.prlimit(guest, which) == resource.prlimit(init, which)
    assert os.sched_getaffinity(guest) == os.sched_getaffinity(init)


def _rune_cmd(r) -> list[str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return [os.path.join(root, "build", "rune"), *r.globals]
