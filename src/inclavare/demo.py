"""`make demo`: a confidential container end to end, on the built-in defaults.

The story, each step a real command (printed before it runs):

1. a tenant signs a WebAssembly enclave (the sample WASI program) with its
   own key: measurement (MRENCLAVE analogue) and signer (MRSIGNER analogue);
2. rune runs it as an enclave container in the built-in `wasm` software
   enclave; the runtime checks the signature and the module's hash first;
3. a verifier asks the running enclave for evidence bound to a fresh nonce
   (`rune attest`) and checks it against the tenant's reference values;
4. a tampered module is refused before anything runs;
5. a key broker (`inclavare kbs serve`, trustee's KBS protocol) holds the
   image key, a secret and a policy admitting the tenant's measurement; the
   tenant ships the workload as an encrypted OCI image, whose layer key is
   released only after attestation (`inclavare image unpack` through
   `inclavare-keyprovider`); the decrypted enclave container attests again
   at launch, receives the secret and prints it;
6. a workload with another measurement asks for the same secret: the KBS
   refuses, and the container does not start.

With ``--hostile`` (``python -m inclavare.demo --hostile``), a seventh step:
the host tries to send the enclave to a broker of its own — by rewriting
``enclave.kbs.url`` (what a cloud control plane can do), then with a
modified rune that dials its own broker whatever the enclave asks for — and
fails both times: the enclave's signed manifest pins the tenant's broker
(URL and CA) and TLS ends inside the container (enclave/provision/).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile

from .testing.bundles import base_config, make_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNE = os.path.join(ROOT, "build", "rune")
TOOL = os.path.join(os.path.dirname(sys.executable), "inclavare")
SAMPLES = os.path.join(ROOT, "samples")
HOST_KEY = "/var/lib/inclavare/software-tee-key.pem"  # this host's software-TEE key (identity/hostkey.py)


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def sh(*cmd: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    shown = " ".join(os.path.basename(c) if c in (RUNE, TOOL) else c for c in cmd)
    print(f"$ {shown}", flush=True)
    # Files, not pipes: a detached container inherits rune's stdout and would
    # hold a pipe open (and this step waiting) for as long as it runs.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = subprocess.run(cmd, stdout=out, stderr=err).returncode
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    proc = subprocess.CompletedProcess(list(cmd), code, *text)
    if not quiet:
        sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    sys.stdout.flush()
    if check and proc.returncode != 0:
        raise SystemExit(f"demo step failed (exit {proc.returncode}): {shown}")
    return proc


def tenant_key(path: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(pem)
    return path


def signed_bundle(tmp: str, key: str) -> tuple[str, dict[str, object]]:
    """A busybox bundle with /app/hello.wasm and its signed manifest."""
    bundle = make_bundle(os.path.join(tmp, "bundle"), base_config(["/app/hello.wasm"]))
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "app"), exist_ok=True)
    shutil.copy2(os.path.join(SAMPLES, "build", "hello.wasm"), os.path.join(rootfs, "app", "hello.wasm"))
    manifest = os.path.join(rootfs, "app", "hello-wasm.toml")
    sh(
        TOOL,
        "enclave",
        "expand",
        os.path.join(SAMPLES, "wasm", "hello.manifest.toml"),
        "--rootfs",
        rootfs,
        "-o",
        manifest,
    )
    sh(TOOL, "enclave", "sign", manifest, "--rootfs", rootfs, "--key", key)
    identity = json.loads(sh(TOOL, "enclave", "inspect", manifest + ".sig").stdout)
    return bundle, identity


def enclave_config(bundle: str, args: list[str]) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = args
    cfg["process"]["env"].append("GREETING=hello from the enclave")
    cfg["annotations"] = {"enclave.type": "software", "enclave.runtime.path": "wasm",
                          "enclave.runtime.args": "manifest=/app/hello-wasm.toml"}  # fmt: skip
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def attest(state: str, bundle: str, identity: dict[str, object], tmp: str) -> None:
    enclave_config(bundle, ["/app/hello.wasm", "sleep=30"])
    sh(RUNE, "--root", state, "run", "-d", "--bundle", bundle, f"demo-attest-{os.getpid()}")
    nonce = secrets.token_hex(32)
    evidence = os.path.join(tmp, "evidence.bin")
    sh(RUNE, "--root", state, "attest", "--report-data", nonce, "--reportFile", evidence, f"demo-attest-{os.getpid()}")
    host_key = os.path.join(tmp, "host-key.pem")
    with open(host_key, "w") as f:
        f.write(json.loads(sh(TOOL, "enclave", "host-key", quiet=True).stdout)["public_key"])
    policy = os.path.join(tmp, "policy.json")
    with open(policy, "w") as f:
        json.dump({"allow_software": True, "allow_debug": False, "measurements": [identity["measurement"]],
                   "signers": [identity["signer"]], "report_data": nonce}, f)  # fmt: skip
    claims = json.loads(sh(TOOL, "evidence", "verify", evidence, "--collateral", host_key, "--policy", policy).stdout)
    print(f"verified: tee={claims.get('tee')} measurement matches the tenant's, bound to the verifier's nonce")
    sh(RUNE, "--root", state, "delete", "--force", f"demo-attest-{os.getpid()}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--as-redirecting-rune"]:
        return redirecting_rune(argv[1], argv[2:])
    if argv not in ([], ["--hostile"]):
        raise SystemExit("usage: python -m inclavare.demo [--hostile]")
    with tempfile.TemporaryDirectory(prefix="inclavare-demo-") as tmp:
        state = os.path.join(tmp, "state")
        try:
            return story(tmp, state, hostile=bool(argv))
        finally:  # a failed step must not leave containers (or their cgroups) behind
            for cid in os.listdir(state) if os.path.isdir(state) else []:
                subprocess.run([RUNE, "--root", state, "delete", "--force", cid], capture_output=True)


def story(tmp: str, state: str, hostile: bool = False) -> int:
    step("1. the tenant signs a WebAssembly enclave")
    key = tenant_key(os.path.join(tmp, "tenant.pem"))
    bundle, identity = signed_bundle(tmp, key)
    print(f"measurement {identity['measurement']}\nsigner      {identity['signer']}")

    step("2. rune runs it in the built-in wasm enclave (software: no hardware protection)")
    enclave_config(bundle, ["/app/hello.wasm", "exit=0"])
    sh(RUNE, "--root", state, "run", "--bundle", bundle, f"demo-{os.getpid()}")

    step("3. remote attestation: evidence bound to a verifier's nonce, checked against reference values")
    attest(state, bundle, identity, tmp)

    step("4. a tampered module is refused before anything runs")
    module = os.path.join(bundle, "rootfs", "app", "hello.wasm")
    with open(module, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    refused = sh(RUNE, "--root", state, "run", "--bundle", bundle, f"demo-tampered-{os.getpid()}", check=False)
    if refused.returncode == 0:
        raise SystemExit("the tampered enclave ran: the demo failed")
    print("refused, as it must be")

    kbs_story(tmp, state, key, hostile)
    return 0


def kbs_story(tmp: str, state: str, key_path: str, hostile: bool) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from .testing.enclaves import pin_broker, set_enclave, wasm_bundle

    step("5. a key broker admits the tenant's measurement: the encrypted image and the secret reach only it")
    kbs = KeyBroker(os.path.join(tmp, "kbs"), "tenant")
    try:
        with open(key_path, "rb") as f:
            tenant = serialization.load_pem_private_key(f.read(), None)
        assert isinstance(tenant, ed25519.Ed25519PrivateKey)  # tenant_key() made it
        bundle, _ = wasm_bundle(os.path.join(tmp, "kbs-bundle"), tenant)
        pin_broker(bundle, tenant, [kbs.url], kbs.ca_pem)
        rootfs = os.path.join(bundle, "rootfs")
        manifest = os.path.join(rootfs, "app", "hello-wasm.toml")
        with open(manifest) as f:
            pinned = f.read().split("[kbs]", 1)[1].strip()
        print(f"the signed manifest pins the tenant's broker (measured with the rest):\n[kbs]\n{pinned}")
        kbs.admin(
            "set-resource",
            "--path",
            "default/secret/greeting",
            "--value",
            "the tenant's secret, for attested enclaves only",
        )
        kbs.admin("set-resource-policy", "--builtin", "approved-executables", "--scope", "default/*")
        kbs.admin("reference-value", "add-from-enclave", manifest, "--sig", manifest + ".sig", "--rootfs", rootfs)
        bundle = encrypted_image_round_trip(tmp, kbs, bundle, manifest)
        provision = {"enclave.kbs.url": kbs.url, "enclave.kbs.resources": "default/secret/greeting"}
        set_enclave(bundle, "preopen=/run/secrets", provision, ["/app/hello.wasm", "read=/run/secrets/greeting"])
        sh(RUNE, "--root", state, "run", "--bundle", bundle, f"demo-kbs-{os.getpid()}")
        print()

        step("6. another workload (not the measured one) asks for the same secret: refused, it does not start")
        other, _ = wasm_bundle(os.path.join(tmp, "kbs-other"), tenant, variant=b"not the approved build")
        pin_broker(other, tenant, [kbs.url], kbs.ca_pem)
        set_enclave(other, "preopen=/run/secrets", provision, ["/app/hello.wasm", "read=/run/secrets/greeting"])
        denied = sh(RUNE, "--root", state, "run", "--bundle", other, f"demo-kbs-other-{os.getpid()}", check=False)
        if denied.returncode == 0:
            raise SystemExit("an unapproved enclave got the secret: the demo failed")
        print("the KBS's audit log (no secret values in it):")
        for record in json.loads(kbs.admin("audit", quiet=True).stdout)[-2:]:
            what = {k: record.get(k) for k in ("event", "resource", "reason") if record.get(k)}
            print("  " + json.dumps(what))
        if hostile:
            hostile_story(tmp, state, bundle, provision)
    finally:
        kbs.stop()


def hostile_story(tmp: str, state: str, bundle: str, provision: dict[str, str]) -> None:
    """Step 7: the host points the enclave at its own broker, twice; the enclave refuses both."""
    from .testing.enclaves import set_enclave

    step("7. the host tries to redirect the enclave to its own broker (with its own CA and secret)")
    own = KeyBroker(os.path.join(tmp, "host-kbs"), "host")
    try:
        own.admin("set-resource", "--path", "default/secret/greeting", "--value", "the host's substitute secret")
        own.admin("set-resource-policy", "--builtin", "allow-all", "--scope", "default/*")
        args = ["/app/hello.wasm", "read=/run/secrets/greeting"]
        print("a) the control plane rewrites enclave.kbs.url:")
        set_enclave(bundle, "preopen=/run/secrets", {**provision, "enclave.kbs.url": own.url}, args)
        redirected = sh(RUNE, "--root", state, "run", "--bundle", bundle, f"demo-hostile-a-{os.getpid()}", check=False)
        print("b) rune on the host dials the host's broker whatever the enclave asks for:")
        set_enclave(bundle, "preopen=/run/secrets", provision, args)
        hijacked = sh(sys.executable, "-m", "inclavare.demo", "--as-redirecting-rune", own.url, "--root", state, "run",
                      "--bundle", bundle, f"demo-hostile-b-{os.getpid()}", check=False)  # fmt: skip
        attested = [r for r in json.loads(own.admin("audit", quiet=True).stdout) if r.get("event") == "attest"]
        if (
            redirected.returncode == 0
            or hijacked.returncode == 0
            or "substitute" in redirected.stdout + hijacked.stdout
        ):
            raise SystemExit("the host's broker provisioned the enclave: the demo failed")
        if attested:
            raise SystemExit("the enclave sent evidence to the host's broker: the demo failed")
        print("refused both times; the host's broker received no evidence and delivered nothing")
    finally:
        own.stop()


def redirecting_rune(target: str, argv: list[str]) -> int:
    """`rune` as a hostile host would modify it: every connection the enclave asks
    for goes to `target` (the host's own broker) instead. Only for step 7."""
    from urllib.parse import urlsplit

    from .cli.rune._main import main as rune_main
    from .enclave.provision import host_relay

    where = urlsplit(target)
    assert where.hostname is not None
    assert where.port is not None
    real_open = host_relay.HostRelay.open

    class Redirecting(host_relay.HostRelay):
        def open(self, host: str, port: int) -> socket.socket:
            return real_open(self, where.hostname or "", where.port or 443)

    host_relay.HostRelay = Redirecting  # type: ignore[misc]  # the demo's hostile host swaps the class in place
    return rune_main(argv)


def encrypted_image_round_trip(tmp: str, kbs: KeyBroker, bundle: str, manifest: str) -> str:
    """Pack the signed enclave as an OCI image, encrypt its layer with a key
    the KBS holds, then unpack it through the attesting key provider."""
    from .image.build import build_image, tar_directory
    from .image.keystore import FileKeyStore, ResourcePath

    kek, keys = secrets.token_bytes(32), os.path.join(tmp, "owner-keys")
    os.makedirs(keys)
    FileKeyStore(keys).put(ResourcePath.parse("kbs:///default/key/image"), kek)  # the owner's copy
    kek_file = os.path.join(tmp, "kek.bin")
    with open(os.open(kek_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(kek)
    kbs.admin("set-resource", "--path", "default/key/image", "--resource-file", kek_file)
    os.unlink(kek_file)
    layout = os.path.join(tmp, "image")
    config = {"Cmd": ["/app/hello.wasm"], "Env": ["PATH=/bin"]}
    build_image(layout, "plain", [(tar_directory(os.path.join(bundle, "rootfs")), "gzip")], config)
    owner = provider_config(os.path.join(tmp, "owner.json"), ["--keys", keys])
    key = "provider:inclavare:kbs:///default/key/image"
    sh(
        TOOL,
        "image",
        "encrypt",
        "--keyprovider-config",
        owner,
        "--encryption-key",
        key,
        f"{layout}:plain",
        f"{layout}:enc",
    )
    rootfs = os.path.join(bundle, "rootfs")
    tee_args = ["--kbs", kbs.url, "--cacert", kbs.ca_file, "--manifest", manifest, "--rootfs", rootfs,
                "--host-key", HOST_KEY]  # fmt: skip
    tee = provider_config(os.path.join(tmp, "tee.json"), tee_args)
    unpacked = os.path.join(tmp, "unpacked")
    sh(TOOL, "image", "unpack", "--keyprovider-config", tee, f"{layout}:enc", unpacked)
    print("the layer key was released to the attested enclave identity; the image is decrypted")
    return unpacked


def provider_config(path: str, args: list[str]) -> str:
    """An ocicrypt key-provider config naming inclavare-keyprovider with `args`."""
    provider = os.path.join(os.path.dirname(TOOL), "inclavare-keyprovider")
    with open(path, "w") as f:
        json.dump({"key-providers": {"inclavare": {"cmd": {"path": provider, "args": args}}}}, f)
    return path


class KeyBroker:
    """`inclavare kbs serve` over HTTPS (a CA of its own), on an ephemeral port, trusting this host's TEE key."""

    def __init__(self, root: str, owner: str) -> None:
        from .testing.pki import CertificateAuthority

        os.makedirs(root)
        self.root = root
        ca = CertificateAuthority(f"the {owner}'s key broker CA")
        self.ca_pem, self.ca_file = ca.pem, f"{root}/ca.pem"
        with open(self.ca_file, "wb") as f:
            f.write(ca.pem)
        ca.write_server(root, "127.0.0.1")
        with open(f"{root}/host.pub.pem", "w") as f:
            f.write(json.loads(sh(TOOL, "enclave", "host-key", quiet=True).stdout)["public_key"])
        admin_pub = sh(TOOL, "kbs", "keygen", "--admin", f"{root}/admin.pem", quiet=True).stdout.strip()
        with open(f"{root}/admin.pub.pem", "w") as f:
            f.write(admin_pub + "\n")
        sh(TOOL, "kbs", "keygen", "--token", f"{root}/token.pem", quiet=True)
        sh(TOOL, "kbs", "keygen", "--kek", f"{root}/kek", quiet=True)
        config = f"{root}/kbs.toml"
        with open(config, "w") as f:
            f.write(KBS_CONFIG.format(root=root))
        self.log = open(f"{root}/kbs.log", "wb")  # noqa: SIM115 - closed in stop()
        print(f"$ inclavare kbs serve --config {config}")
        self.proc = subprocess.Popen([TOOL, "kbs", "serve", "--config", config, "--ready-file", f"{root}/ready"],
                                     stdout=self.log, stderr=self.log)  # fmt: skip
        self.url = "https://" + self._ready(f"{root}/ready")

    def _ready(self, path: str) -> str:
        import time

        for _ in range(600):
            if self.proc.poll() is not None:
                raise SystemExit(f"the KBS exited: see {self.root}/kbs.log")
            if os.path.exists(path):
                with open(path) as f:
                    return f.read().strip()
            time.sleep(0.05)
        raise SystemExit("the KBS did not come up in 30 s")

    def admin(self, *args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        return sh(TOOL, "kbs-client", "--url", self.url, "--cacert", self.ca_file, "--admin-key",
                  f"{self.root}/admin.pem", *args, quiet=quiet)  # fmt: skip

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


KBS_CONFIG = """\
[http]
listen = "127.0.0.1:0"
tls_cert = "{root}/tls.crt"
tls_key = "{root}/tls.key"

[attestation]
collateral = ["{root}/host.pub.pem"]
policy = "allow-software"

[token]
signing_key = "{root}/token.pem"

[audit]
path = "{root}/audit.jsonl"

[storage]
path = "{root}/kbs.db"

[storage.kek]
file = "{root}/kek"

[[admin.keys]]
name = "tenant"
public_key = "{root}/admin.pub.pem"
scopes = ["*"]
"""


if __name__ == "__main__":
    sys.exit(main())
