"""Plain images made enclaves by shim-rune's carrier at Create, through a real containerd.

kubelet's part is played over the CRI (crikit), as in test_shim_cri.py; the
images carry no manifest and no signature. What the issue asks to see:

* a pod of a plain image gets a KBS secret at launch: the image carries the
  tenant broker's CA, the pod's env asks for the wasm carrier and the
  resource. The manifest only exists once the carrier ran at Create, so the
  tenant cannot register its measurement beforehand; it registers the key
  that signs it (by signer, product id and SVN: docs/kubernetes.md), here
  the node key of the handler's carrier configuration, made before the pod;
* a plain image signed by a real signing server (handler rune-shim-signed)
  is attested: `rune attest` against the shim's rune root, `inclavare
  evidence verify` under the host key and a policy pinning the measurement
  of the manifest the carrier wrote and the server's MRSIGNER;
* the same image refused when the signing server refuses the node's token:
  the shim's Create fails in one line — in the CRI that is StartContainer
  (CreateContainer only records the container) — and nothing is left;
* `ctr run --runtime io.containerd.rune.v2` of the plain image with the
  carrier: an enclave, its exit code the task's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib

import grpc
import pytest
from crikit import client, host, images
from crikit.client import cri as api
from crikit.daemon import SHIM_HANDLER, SHIM_HANDLER_REQUIRED, SHIM_HANDLER_SIGNED
from crikit.images import PLAIN_WASM_IMAGE
from shimkit import CTR_NAMESPACE, RUNE

from inclavare.carrier import MANIFEST, SIGNATURE
from inclavare.carrier.broker import CA_FILE
from inclavare.enclave.identity import KeySigner, verify_signature
from inclavare.enclave.identity.identity import signer_id
from inclavare.image.build import build_image, tar_directory
from inclavare.testing import kbs as kbs_testing
from inclavare.testing.containers import wait_for
from inclavare.testing.pki import CertificateAuthority

pytestmark = pytest.mark.root

INCLAVARE = [sys.executable, "-m", "inclavare.cli.tool._main"]
KBS_IMAGE = "localhost/inclavare-test/plain-wasm-kbs:latest"
# ends a line: containerd's CRI logger holds a partial line until the stream ends (pkg/cri/io/logger.go)
SECRET = b"hello from the key broker\n"
RESOURCE = "default/secret/greeting"
SECRET_PATH = "/run/secrets/greeting"
CARRIED = {"enclave.carrier": "wasm"}


def inclavare(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*INCLAVARE, *args], capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"inclavare {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def write(path: str, data: bytes, mode: int) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # the umask does not decide what the carrier checks


def cri_log(pod, name: str) -> str:
    try:
        with open(os.path.join(pod.log_dir, f"{name}.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def leftovers(daemon, pod) -> tuple[list[str], list[str], list[str]]:
    """What a task leaves: rune's containers, the shim's bundles, the mounts below them."""
    tasks = os.path.dirname(daemon.bundle(pod.id))
    return daemon.rune_containers(), sorted(os.listdir(tasks)), host.mounts_below(tasks)


def rootfs_file(daemon, cid: str, path: str) -> str:
    return os.path.join(daemon.bundle(cid), "rootfs", path.lstrip("/"))


# -- a pod's KBS secret ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    """A TLS KBS trusting this machine's host key, holding RESOURCE for approved executables."""
    world = kbs_testing.World.create(str(tmp_path_factory.mktemp("shim-kbs")))
    with kbs_testing.TlsBroker(world, "shim") as broker, broker.admin(world) as admin:
        admin.set_resource(RESOURCE, SECRET)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        yield broker, world


@pytest.fixture(scope="module")
def kbs_image(shim_containerd, kbs, rootfs_cache, tmp_path_factory) -> str:
    """busybox, /app/hello.wasm as Entrypoint and the tenant broker's CA at CA_FILE; unsigned, imported."""
    broker, _ = kbs
    work = str(tmp_path_factory.mktemp("kbs-image"))
    tree = os.path.join(work, "layer")
    os.makedirs(os.path.join(tree, "app"))
    os.makedirs(os.path.dirname(tree + CA_FILE))
    with open(os.path.join(images.ROOT, "samples", "build", "hello.wasm"), "rb") as f:
        write(os.path.join(tree, "app", "hello.wasm"), f.read(), 0o755)
    with open(broker.ca_file, "rb") as f:
        write(tree + CA_FILE, f.read(), 0o644)
    layout = os.path.join(work, "layout")
    build_image(layout, KBS_IMAGE, [(tar_directory(rootfs_cache), "gzip"), (tar_directory(tree), "gzip")],
                {"Entrypoint": ["/app/hello.wasm"], "Env": [images.PATH_ENV], "WorkingDir": "/"})  # fmt: skip
    images.import_images(shim_containerd.ctr, images.pack(layout, os.path.join(work, "image.tar")))
    shim_containerd.wait_image(KBS_IMAGE)
    return KBS_IMAGE


def test_a_pod_of_a_plain_image_gets_its_kbs_secret_at_launch(shim_containerd, pods, kbs, kbs_image):
    daemon, cri = shim_containerd, shim_containerd.cri
    broker, world = kbs
    # rune-shim-confidential's carrier signs with the node key; the tenant learns its MRSIGNER before any pod
    node_signer = signer_id(KeySigner.load_or_create(daemon.carrier_key).public_key_der()).hex()
    envs = {"RUNE_CARRIER": "wasm", "ENCLAVE_KBS_URL": broker.url, "ENCLAVE_KBS_RESOURCES": RESOURCE}
    pod = pods("kbs-pod", handler=SHIM_HANDLER_REQUIRED)
    args = ["/app/hello.wasm", f"read={SECRET_PATH}", "sleep=300"]
    before = leftovers(daemon, pod)
    unknown = cri.create_container(pod.id, client.container("unknown", kbs_image, args, envs=envs), pod.config)
    with pytest.raises(grpc.RpcError) as err:  # the tenant has not approved this signer yet
        cri.start_container(unknown)
    assert "OCI runtime create failed: secret provisioning: KBS answered 403 PolicyDeny" in err.value.details()
    assert SECRET.decode() not in cri_log(pod, "unknown")
    assert leftovers(daemon, pod) == before
    with broker.admin(world) as admin:
        for name, value in (("signer", node_signer), ("product_id", "0"), ("min_svn", "0")):
            admin.add_reference_values(f"software.{name}", [value])
    cid = pod.start("greeter", args, image=kbs_image, envs=envs)
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    wait_for(lambda: f"stdout F {SECRET.decode()}" in cri_log(pod, "greeter"), "the secret in the container's CRI log")

    enclave = daemon.rune_state(cid)["enclave"]
    assert (enclave["type"], enclave["path"]) == ("software", "wasm")
    with open(rootfs_file(daemon, cid, MANIFEST), "rb") as f:
        manifest = tomllib.load(f)
    assert manifest["kbs"]["urls"] == [broker.url]  # the pod's broker, pinned by the carrier, measured
    assert CA_FILE in str(manifest["trusted_files"])
    identity = verify_signature(rootfs_file(daemon, cid, MANIFEST), rootfs_file(daemon, cid, SIGNATURE),
                                os.path.join(daemon.bundle(cid), "rootfs"))  # fmt: skip
    assert (identity.signer.hex(), identity.isv_prod_id, identity.isv_svn) == (node_signer, 0, 0)
    with open(daemon.log, errors="replace") as f:
        log = f.read()
    assert SECRET.decode() not in log  # the shim's log (containerd's) never sees it
    assert f'level=warning msg="no [signature] server_address in {daemon.carrier_config}: MOCK SIGNING' in log
    cri.stop_container(cid, timeout=5)


# -- signed by a signing server, or refused by it --------------------------------------------------
class SigningServer:
    """`inclavare signing-server serve` over TLS (a CA of this module's) with node-1's bearer token."""

    def __init__(self, root: str) -> None:
        authority = CertificateAuthority("signing test CA")
        cert, key = authority.write_server(root, "127.0.0.1")
        self.ca = os.path.join(root, "ca.pem")
        write(self.ca, authority.pem, 0o644)
        signing_key = os.path.join(root, "signer.pem")
        public = inclavare("signing-server", "keygen", "--algorithm", "ed25519", signing_key).stdout
        self.mrsigner = public.rsplit("MRSIGNER ", 1)[1].strip()
        self.token_file = os.path.join(root, "node-1.token")
        tokens = os.path.join(root, "tokens")
        write(tokens, inclavare("signing-server", "token", "node-1", "--out", self.token_file).stdout.encode(), 0o600)
        self.audit = os.path.join(root, "audit.jsonl")
        ready = os.path.join(root, "ready")
        self.log = open(os.path.join(root, "server.log"), "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*INCLAVARE, "signing-server", "serve", "--key", signing_key, "--listen", "127.0.0.1:0",
             "--tls-cert", cert, "--tls-key", key, "--tokens", tokens, "--audit-log", self.audit,
             "--ready-file", ready],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: os.path.exists(ready) or self.proc.poll() is not None, "the signing server", 30)
            if not os.path.exists(ready):
                raise AssertionError(f"signing server exited {self.proc.returncode}: {self.output()}")
        except AssertionError:
            self.stop()
            raise
        with open(ready) as f:
            self.url = "https://" + f.read().strip()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def audit_lines(self) -> list[dict]:
        with open(self.audit) as f:
            return [json.loads(line) for line in f]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def signing_server(tmp_path_factory):
    server = SigningServer(str(tmp_path_factory.mktemp("shim-signer")))
    yield server
    server.stop()


def sign_with(daemon, server: SigningServer, token: bytes) -> None:
    """rune-shim-signed's carrier configuration: `server`, reached with the node token `token`.
    The carrier reads both at each Create (carrier/signers.py), as a node rotating its token would."""
    token_file = os.path.join(daemon.base, "signer.token")
    write(token_file, token, 0o600)
    config = (f'[signature]\nserver_address = "{server.url}"\nca_cert = "{server.ca}"\n'
              f'token_file = "{token_file}"\nexpected_signer = "{server.mrsigner}"\n')  # fmt: skip
    write(daemon.signed_carrier_config, config.encode(), 0o644)


def test_a_plain_image_signed_by_the_signing_server_is_attested(shim_containerd, pods, signing_server, tmp_path):
    daemon, cri = shim_containerd, shim_containerd.cri
    with open(signing_server.token_file, "rb") as f:
        sign_with(daemon, signing_server, f.read())
    pod = pods("signed-pod", handler=SHIM_HANDLER_SIGNED)
    cid = pod.start("signed", ["/app/hello.wasm", "sleep=300"], image=PLAIN_WASM_IMAGE, annotations=CARRIED)
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    rootfs = os.path.join(daemon.bundle(cid), "rootfs")
    identity = verify_signature(rootfs_file(daemon, cid, MANIFEST), rootfs_file(daemon, cid, SIGNATURE), rootfs)
    measurement = identity.measurement.hex()
    assert identity.signer.hex() == signing_server.mrsigner
    audit = signing_server.audit_lines()[-1]
    assert (audit["event"], audit["who"], audit["enclave"]["measurement"]) == ("signature", "token:node-1", measurement)
    said = (f"level=info msg=\"carrier wasm (annotations.enclave.carrier): /app/hello.wasm is enclave {measurement}, "
            f"signed by the signing server {signing_server.url} (MRSIGNER {signing_server.mrsigner})\"")  # fmt: skip
    with open(daemon.log, errors="replace") as f:
        assert said in f.read()  # the shim's log says what its carrier had signed (docs/kubernetes.md)

    report = str(tmp_path / "report.bin")
    attest = daemon.rune("attest", "--reportFile", report, cid)  # the shim's rune root, the container's id
    assert attest.returncode == 0, attest.stderr
    shown = json.loads(inclavare("evidence", "inspect", report).stdout)  # decoded, nothing verified yet
    assert (shown["measurement"], shown["signer"]) == (measurement, signing_server.mrsigner)
    host_key = tmp_path / "host-key.pem"
    host_key.write_text(json.loads(inclavare("enclave", "host-key").stdout)["public_key"])
    verified = json.loads(verify(report, host_key, measurement, signing_server.mrsigner).stdout)
    assert (verified["verified"], verified["tee"]) == (True, "software")
    assert (verified["claims"]["measurement"], verified["claims"]["signer"]) == (measurement, signing_server.mrsigner)
    other = verify(report, host_key, "00" * 32, signing_server.mrsigner, check=False)  # another enclave's value
    assert (other.returncode, other.stderr.strip()) == (
        1,
        f"inclavare evidence: policy: measurements: software measurement {measurement} is not a reference value",
    )
    cri.stop_container(cid, timeout=5)


def verify(report: str, host_key, measurement: str, signer: str, check: bool = True) -> subprocess.CompletedProcess:
    policy = f"{host_key}.policy.toml"
    with open(policy, "w") as f:
        f.write(f'allow_software = true\nmeasurements = ["{measurement}"]\nsigners = ["{signer}"]\n')
    return inclavare("evidence", "verify", report, "--collateral", str(host_key), "--policy", policy, check=check)


def test_refused_by_the_signing_server_the_task_is_not_created(shim_containerd, pods, signing_server):
    """CreateContainer only records the container in the CRI; the shim's Create (the carrier, then
    rune create) is StartContainer's "create task", so that is the RPC that fails."""
    daemon, cri = shim_containerd, shim_containerd.cri
    sign_with(daemon, signing_server, b"a-token-the-server-never-issued\n")
    pod = pods("refused-pod", handler=SHIM_HANDLER_SIGNED)
    before = leftovers(daemon, pod)
    cid = cri.create_container(pod.id, client.container("refused", PLAIN_WASM_IMAGE, ["/app/hello.wasm", "sleep=300"],
                                                        annotations=CARRIED), pod.config)  # fmt: skip
    with pytest.raises(grpc.RpcError) as err:
        cri.start_container(cid)
    details = err.value.details()
    refusal = f"carrier: signing server {signing_server.url}/api/v1/signature/ed25519: HTTP 401: bearer token refused"
    assert refusal in details
    assert "\n" not in details
    assert signing_server.audit_lines()[-1]["event"] == "refused"
    status = cri.container_status(cid).status
    assert (status.state, status.reason) == (api.CONTAINER_EXITED, "StartError")
    assert refusal in status.message  # what kubelet shows in the pod's events
    assert leftovers(daemon, pod) == before  # rune never ran, the rootfs is unmounted, the bundle gone


# -- ctr ---------------------------------------------------------------------------------------------
def ctr(daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*daemon.ctr, "-n", CTR_NAMESPACE, *args], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


def task_status(daemon, cid: str) -> str:
    rows = (line.split() for line in ctr(daemon, "task", "ls").stdout.splitlines()[1:])
    return next((row[2] for row in rows if row and row[0] == cid), "")


def test_ctr_run_of_a_plain_image_with_the_carrier(shim_containerd):
    """The shim's configuration (rune, its root, the carrier's config: the node key) through
    --runtime-config-path; the carrier asked for in the container's environment."""
    daemon = shim_containerd
    run = ["run", "--runtime", "io.containerd.rune.v2", "--runtime-config-path",
           os.path.join(daemon.base, f"{SHIM_HANDLER}.toml"), "--env", "RUNE_CARRIER=wasm"]  # fmt: skip
    out = ctr(daemon, *run, "--rm", PLAIN_WASM_IMAGE, "c-carried", "/app/hello.wasm", "exit=3")
    assert out.returncode == 3, out.stderr
    assert "argv[0]=/app/hello.wasm" in out.stdout

    cid = "c-carried-d"
    assert ctr(daemon, *run, "-d", PLAIN_WASM_IMAGE, cid, "/app/hello.wasm", "sleep=300").returncode == 0
    rune = [RUNE, "--root", os.path.join(daemon.rune_root, CTR_NAMESPACE), "state", cid]
    state = json.loads(subprocess.run(rune, capture_output=True, text=True, timeout=60, check=True).stdout)
    assert (state["enclave"]["type"], state["enclave"]["path"]) == ("software", "wasm")
    node_signer = signer_id(KeySigner.load_or_create(daemon.carrier_key).public_key_der()).hex()
    with open(os.path.join(state["bundle"], "config.json")) as f:
        assert json.load(f)["annotations"]["enclave.runtime.args"] == f"manifest={MANIFEST},signer={node_signer}"
    assert ctr(daemon, "task", "kill", "-s", "SIGKILL", cid).returncode == 0
    wait_for(lambda: task_status(daemon, cid) == "STOPPED", "the task to stop")
    deleted = ctr(daemon, "task", "delete", cid)
    assert "exit code 137" in deleted.stdout + deleted.stderr
    assert ctr(daemon, "container", "delete", cid).returncode == 0
