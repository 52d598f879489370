"""prepare() on real bundles: the manifest it generates, the signature, config.json, and what it refuses."""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib

import pytest

from conftest import config_text, load
from inclavare.carrier import MANIFEST, SIGNATURE, prepare
from inclavare.carrier.errors import CarrierError
from inclavare.carrier.flow import OPTION_CONFIG
from inclavare.enclave.config import enclave_config, read_settings
from inclavare.enclave.identity import KeySigner, verify_signature
from inclavare.enclave.identity.errors import SignatureError
from inclavare.enclave.identity.identity import signer_id


def run(bundle: str, config: str) -> dict:
    prepare(bundle, options={OPTION_CONFIG: config})
    return load(bundle)


def inside(bundle: str, path: str) -> str:
    return os.path.join(bundle, "rootfs", path.lstrip("/"))


def manifest_of(bundle: str) -> dict:
    with open(inside(bundle, MANIFEST), "rb") as f:
        return tomllib.load(f)


def test_wasm_manifest_from_the_spec(bundle, node_config):
    env = ["RUNE_CARRIER=wasm", "GREETING=hi", "GREETING=hello", "HOSTNAME=web-7f9c",
           "KUBERNETES_SERVICE_HOST=10.96.0.1",
           "KUBERNETES_PORT=tcp://10.96.0.1:443", "DB_PORT_5432_TCP_ADDR=10.0.0.9", "HTTP_PORT=8080",
           "ENCLAVE_KBS_URL=https://127.0.0.1:1"]  # fmt: skip
    # The image carries no broker CA: the opt-out (test_broker.py pins one).
    b = bundle(["/app/hello.wasm", "one", "exit=3"], env, {"enclave.kbs.insecure_unpinned": "true"}, 32 << 20)
    cfg = run(b, node_config())
    m = manifest_of(b)
    assert m["runtime"] == "wasm"
    assert m["memory_limit"] == 32 << 20
    assert m["wasm"]["module"] == "/app/hello.wasm"
    assert m["wasm"]["max_memory_pages"] == 512
    assert m["argv"] == {"policy": "fixed", "values": ["/app/hello.wasm", "one", "exit=3"]}
    # The last GREETING wins; HTTP_PORT is the workload's, KUBERNETES_PORT a service link (tcp:// value).
    assert m["env"]["fixed"]["GREETING"] == "hello"
    assert m["env"]["fixed"]["HTTP_PORT"] == "8080"
    assert m["env"]["passthrough"] == [
        "DB_PORT_5432_TCP_ADDR",
        "HOSTNAME",
        "KUBERNETES_PORT",
        "KUBERNETES_SERVICE_HOST",
    ]
    assert "RUNE_CARRIER" not in m["env"]["fixed"]
    assert "ENCLAVE_KBS_URL" not in m["env"]["fixed"]
    # KBS secrets asked for: the module may read them, read-only, and nothing else.
    assert m["wasm"]["preopened_dirs"] == [{"guest": "/run/secrets", "path": "/run/secrets", "read_only": True}]
    assert "kbs" not in m  # opted out: no pin
    identity = verify_signature(inside(b, MANIFEST), inside(b, SIGNATURE), os.path.join(b, "rootfs"))
    key = KeySigner.from_pem_file(os.path.join(os.path.dirname(b), "node-key.pem"))
    assert identity.signer == signer_id(key.public_key_der())
    assert cfg["annotations"] == {
        "enclave.kbs.insecure_unpinned": "true",
        "enclave.type": "software",
        "enclave.runtime.path": "wasm",
        "enclave.runtime.args": f"manifest={MANIFEST},signer={identity.signer.hex()}",
    }
    # What rune then reads: an enclave, with the carrier setting recognised.
    config = enclave_config(read_settings(cfg["annotations"], cfg["process"]["env"]))
    assert config is not None
    assert (config.type, config.runtime) == ("software", "wasm")


def test_native_manifest_pins_the_program(bundle, node_config):
    b = bundle(["/app/hello", "probe"], ["RUNE_CARRIER=native"])
    cfg = run(b, node_config())
    m = manifest_of(b)
    assert m["runtime"] == "native"
    assert m["entrypoint"] == "/app/hello"
    assert [t["path"] for t in m["trusted_files"]] == ["/app/hello"]
    assert m["memory_limit"] == 256 << 20  # no limit in the spec
    assert cfg["annotations"]["enclave.runtime.path"] == "native"
    verify_signature(inside(b, MANIFEST), inside(b, SIGNATURE), os.path.join(b, "rootfs"))


def test_the_annotation_chooses_too(bundle, node_config):
    b = bundle(env=[], annotations={"enclave.carrier": "wasm"})
    assert run(b, node_config())["annotations"]["enclave.runtime.path"] == "wasm"


@pytest.mark.parametrize("env", [[], ["RUNE_CARRIER="]])
def test_no_carrier_changes_nothing(bundle, node_config, env):
    b = bundle(env=env)
    before = config_text(b)
    prepare(b, options={OPTION_CONFIG: node_config()})
    assert config_text(b) == before
    assert not os.path.exists(inside(b, "/.inclavare"))


def test_sandbox_container_is_left_alone(bundle, node_config):
    sandbox = {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "c1",
               "enclave.carrier": "wasm"}  # fmt: skip
    b = bundle(env=[], annotations=sandbox)
    prepare(b, options={OPTION_CONFIG: node_config()})
    assert "enclave.type" not in load(b)["annotations"]


def test_running_again_gives_the_same_bundle(bundle, node_config):
    b = bundle()
    first = run(b, node_config())
    with open(inside(b, SIGNATURE), "rb") as f:
        sig = f.read()
    assert run(b, node_config()) == first
    with open(inside(b, SIGNATURE), "rb") as f:
        assert f.read() == sig  # Ed25519 is deterministic, and so is the manifest


def test_the_shims_options_object_names_the_config(bundle, node_config):
    """The shim passes its options as an object; its config_path (containerd's ConfigPath) is our config.toml."""

    class ShimOptions:
        binary_name = "rune"
        config_path = node_config()

    b = bundle()
    prepare(b, load(b), ShimOptions())
    assert load(b)["annotations"]["enclave.type"] == "software"
    key = os.path.join(os.path.dirname(b), "node-key.pem")
    assert os.path.exists(key)  # the test's config was read, not /etc/inclavare-containers/config.toml


def test_spec_passed_in_is_updated_and_written(bundle, node_config):
    b = bundle()
    spec = load(b)
    prepare(b, spec, {OPTION_CONFIG: node_config()})
    assert spec["annotations"]["enclave.type"] == "software"
    assert load(b) == spec


@pytest.mark.parametrize(
    ("env", "annotations", "message"),
    [
        (["RUNE_CARRIER=wasm", "ENCLAVE_TYPE=intelSgx"], {},
         "process.env ENCLAVE_TYPE: 'intelSgx': the wasm carrier sets the enclave itself"),
        (["RUNE_CARRIER=wasm"], {"enclave.runtime.path": "native"},
         "annotations.enclave.runtime.path: 'native': the wasm carrier sets the enclave itself"),
        (["RUNE_CARRIER=wasm"], {"enclave.runtime.args": "manifest=/app/mine.toml"},
         "annotations.enclave.runtime.args: 'manifest=/app/mine.toml': the wasm carrier sets the enclave itself"),
    ],
)  # fmt: skip
def test_enclave_settings_of_its_own_are_refused(bundle, node_config, env, annotations, message):
    b = bundle(env=env, annotations=annotations)
    before = config_text(b)
    with pytest.raises(CarrierError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        prepare(b, options={OPTION_CONFIG: node_config()})
    assert config_text(b) == before
    assert not os.path.exists(inside(b, "/.inclavare"))  # refused before anything was built or signed


@pytest.mark.parametrize(
    ("args", "env", "memory", "message"),
    [
        (["hello.wasm"], ["RUNE_CARRIER=wasm"], None, "config.json: process.args[0]: 'hello.wasm' must be an absolute"),
        (["/app/../app/hello.wasm"], ["RUNE_CARRIER=wasm"], None, "must be an absolute, normalised path"),
        (["/app/hello"], ["RUNE_CARRIER=wasm"], None,
         "config.json: process.args[0]: /app/hello is not a WebAssembly module (no \\0asm magic)"),
        (["/app/hello.wasm"], ["RUNE_CARRIER=native"], None, "/app/hello.wasm is not an ELF executable"),
        (["/bin/dynamic"], ["RUNE_CARRIER=native"], None,
         "/bin/dynamic is dynamically linked (PT_INTERP): the native carrier runs static programs only"),
        (["/app/missing.wasm"], ["RUNE_CARRIER=wasm"], None,
         "/app/missing.wasm: No such file or directory in the rootfs"),
        (["/app/hello.wasm"], ["RUNE_CARRIER=wasm"], 4096,
         "config.json: linux.resources.memory.limit: 4096 bytes is less than one 64 KiB WebAssembly page"),
        (["/app/hello.wasm"], ["RUNE_CARRIER=wasm", "=x"], None, "config.json: process.env[3]: must be a NAME=value"),
    ],
)  # fmt: skip
def test_bad_workloads_are_one_line(bundle, node_config, args, env, memory, message):
    b = bundle(args, env, memory=memory)
    with pytest.raises(CarrierError) as info:
        prepare(b, options={OPTION_CONFIG: node_config()})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert "enclave.type" not in load(b)["annotations"]


def test_rootfs_symlinks_stay_inside(bundle, node_config, tmp_path):
    """An image's /.inclavare -> <host dir> must not make the carrier write on the host: the link
    resolves inside the rootfs, where it dangles, and the carrier refuses."""
    host = tmp_path / "host"
    host.mkdir()
    b = bundle()
    os.symlink(str(host), inside(b, "/.inclavare"))
    with pytest.raises(CarrierError, match=r"^rootfs: /.inclavare: .*\.inclavare is a dangling symlink"):
        prepare(b, options={OPTION_CONFIG: node_config()})
    assert os.listdir(host) == []
    assert "enclave.type" not in load(b)["annotations"]


def test_rootfs_symlink_inside_is_followed_there(bundle, node_config):
    b = bundle()
    os.mkdir(inside(b, "/data"))
    os.symlink("../../../data", inside(b, "/.inclavare"))  # ".." stops at the rootfs' root
    run(b, node_config())
    assert sorted(os.listdir(inside(b, "/data"))) == ["enclave.toml", "enclave.toml.sig"]


def test_manifest_replaces_what_the_image_had_without_writing_through(bundle, node_config):
    """A file of the image at the manifest's name, hard-linked to the program: replaced, the program intact."""
    b = bundle()
    os.mkdir(inside(b, "/.inclavare"))
    os.link(inside(b, "/app/hello.wasm"), inside(b, MANIFEST))
    with open(inside(b, "/app/hello.wasm"), "rb") as f:
        module = f.read()
    run(b, node_config())
    with open(inside(b, "/app/hello.wasm"), "rb") as f:
        assert f.read() == module
    assert manifest_of(b)["runtime"] == "wasm"


def test_program_symlink_to_a_host_file_is_read_in_the_rootfs(bundle, node_config, samples):
    """/app/prog -> /<real path of a wasm module on the host>: not found inside the rootfs, so refused."""
    b = bundle(["/app/prog"])
    os.symlink(os.path.join(samples, "hello.wasm"), inside(b, "/app/prog"))
    with pytest.raises(CarrierError, match="/app/prog: No such file or directory in the rootfs"):
        prepare(b, options={OPTION_CONFIG: node_config()})


def test_client_signed_images_are_verified_not_rebuilt(bundle, node_config):
    signed = bundle(name="built")
    run(signed, node_config())  # what the tenant did off-cloud: the image now carries manifest and signature
    b = bundle(name="pod")
    shutil.rmtree(os.path.join(b, "rootfs"))
    shutil.copytree(os.path.join(signed, "rootfs"), os.path.join(b, "rootfs"), symlinks=True)
    config = node_config('[enclave_runtime]\nsignature_method = "client"')
    before = os.stat(inside(b, MANIFEST)).st_mtime_ns
    cfg = run(b, config)
    assert os.stat(inside(b, MANIFEST)).st_mtime_ns == before
    assert cfg["annotations"]["enclave.runtime.args"].startswith(f"manifest={MANIFEST},signer=")
    with open(inside(b, "/app/hello.wasm"), "ab") as f:
        f.write(b"\0")
    with pytest.raises(Exception, match=r"wasm\.module_sha256: mismatch for /app/hello\.wasm"):
        prepare(b, options={OPTION_CONFIG: config})


def test_client_mode_without_a_signed_manifest_is_refused(bundle, node_config):
    b = bundle()
    config = node_config('[enclave_runtime]\nsignature_method = "client"')
    with pytest.raises(CarrierError, match=f"^signature_method client: {MANIFEST}: No such file or directory"):
        prepare(b, options={OPTION_CONFIG: config})


def test_client_mode_checks_the_expected_signer(bundle, node_config):
    signed = bundle(name="built")
    run(signed, node_config())
    config = node_config('[enclave_runtime]\nsignature_method = "client"', expected_signer="00" * 32)
    with pytest.raises(SignatureError, match="is not the expected 0000"):
        prepare(signed, options={OPTION_CONFIG: config})


def test_failure_leaves_config_json_untouched(bundle, node_config, tmp_path):
    b = bundle()
    before = config_text(b)
    bad = node_config(server_address="http://127.0.0.1:9/")  # nothing listens on the discard port
    with pytest.raises(
        Exception, match=re.escape("signing server http://127.0.0.1:9/api/v1/signature/public-key: cannot connect")
    ):
        prepare(b, options={OPTION_CONFIG: bad})
    assert config_text(b) == before
    assert json.loads(before)["process"]["env"][-1] == "RUNE_CARRIER=wasm"
