"""A container granted enclave memory by the device plugin, run by rune: within its grant it runs;
an enclave asking for more is refused by `rune run` in one line (runtime/memory_grant.py).

The grant is the real plugin's Allocate answer, asked for by the fake kubelet of the unit tests
(tests/unit/deviceplugin/fakekubelet.py), as kubelet asks it when it starts a pod's container.
"""

from __future__ import annotations

import importlib.util
import os
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2 as pb
from inclavare.deviceplugin.plugin import DevicePlugin, Options
from inclavare.deviceplugin.resources import ENCLAVE_MEMORY, Settings
from inclavare.testing.enclaves import set_enclave, wasm_bundle

pytestmark = pytest.mark.root

_FAKE = os.path.join(os.path.dirname(__file__), "..", "..", "unit", "deviceplugin", "fakekubelet.py")


def _fake_kubelet_class():
    spec = importlib.util.spec_from_file_location("fakekubelet", _FAKE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeKubelet


@pytest.fixture(scope="module")
def kubelet(tmp_path_factory):
    """The plugin serving 64 MiB of enclave memory to a fake kubelet (rune: this checkout's)."""
    directory = str(tmp_path_factory.mktemp("dp"))
    rune = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "rune")
    with _fake_kubelet_class()(directory) as fake:
        plugin = DevicePlugin(Options(directory=directory, rune=os.path.abspath(rune), feature_file=None,
                                      settings=Settings(enclave_memory_mib=64), interval=0.05))  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=plugin.run, args=(stop,), daemon=True)
        thread.start()
        fake.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 64 and all(h == "Healthy" for _, h in d))
        yield fake
        stop.set()
        thread.join(10)


def granted_env(kubelet, mib: int) -> list[str]:
    """The environment kubelet gives a container allocated `mib` devices (the plugin's preference)."""
    plugin = kubelet.client(ENCLAVE_MEMORY)
    available = [f"mib-{i}" for i in range(64)]
    preferred = plugin.GetPreferredAllocation(pb.PreferredAllocationRequest(container_requests=[
        pb.ContainerPreferredAllocationRequest(available_deviceIDs=available, allocation_size=mib)]))  # fmt: skip
    ids = list(preferred.container_responses[0].deviceIDs)
    answer = plugin.Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)]))
    return [f"{k}={v}" for k, v in sorted(answer.container_responses[0].envs.items())]


@pytest.fixture(scope="module")
def tenant_key():
    return ed25519.Ed25519PrivateKey.generate()


def test_enclave_within_its_grant_runs(rune, tmp_path, rootfs_cache, kubelet, tenant_key):
    env = granted_env(kubelet, 16)  # the sample's manifest: 16 MiB (256 wasm pages)
    assert env == ["ENCLAVE_MEMORY_GRANT_MIB=16"]
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    set_enclave(bundle, env=env)
    r = rune("run", "--bundle", bundle, "grant-ok")
    assert r.returncode == 0, r.stderr
    assert "hello" in r.stdout.lower()


def test_enclave_asking_for_more_than_its_grant_is_refused(rune, tmp_path, rootfs_cache, kubelet, tenant_key,
                                                           state_root):  # fmt: skip
    env = granted_env(kubelet, 8)
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    set_enclave(bundle, env=env)
    r = rune("run", "--bundle", bundle, "grant-over")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr  # one line, runc's shape: time=... level=error msg="..."
    assert (
        'level=error msg="config.json: process.env ENCLAVE_MEMORY_GRANT_MIB: the enclave asks for 16 MiB '
        '(/app/hello-wasm.toml, wasm.max_memory_pages = 256), more than the 8 MiB of enclave memory granted"\n'
    ) in r.stderr
    assert not os.path.exists(os.path.join(state_root, "grant-over"))


def test_lowering_the_memory_within_the_grant_runs(rune, tmp_path, rootfs_cache, kubelet, tenant_key):
    env = granted_env(kubelet, 8)
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    set_enclave(bundle, "memory=8M", env=env)
    r = rune("run", "--bundle", bundle, "grant-lowered")
    assert r.returncode == 0, r.stderr
