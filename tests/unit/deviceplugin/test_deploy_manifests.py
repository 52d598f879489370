"""deploy/: every manifest valid against Kubernetes' own schemas (kubernetes-validate ships them: no
network), and consistent with the code — ports, paths, env names, resource names and labels read
from the same constants the code uses."""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import tomllib

import kubernetes_validate
import pytest
import yaml

from inclavare.carrier import containerd, node
from inclavare.cli.tool import device_plugin as device_plugin_cli
from inclavare.cli.tool import node as node_cli
from inclavare.deviceplugin import config as dp_config
from inclavare.deviceplugin import features, plugin
from inclavare.deviceplugin.node import CPUINFO, ENCLAVE_NODES, PROVISION_NODES, SYSFS_EPC
from inclavare.deviceplugin.resources import Settings
from inclavare.enclave.config import AESMD_DIR, MEMORY_GRANT_ENV
from inclavare.kbs.config import ENV_CONFIG, HttpConfig, parse_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = "1.30.0"  # the oldest release with ValidatingAdmissionPolicy v1 (admission-policy.yaml)
FILES = sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True))


def documents(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def everything() -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for path in FILES for d in documents(path)}


def test_there_are_manifests():
    assert {os.path.relpath(p, DEPLOY) for p in FILES} >= {
        "namespace.yaml", "runtimeclass.yaml", "node.yaml", "admission-policy.yaml",
        "kbs/kbs.yaml", "kbs/postgres.yaml", "kbs/secrets.yaml", "kbs/networkpolicy.yaml",
    }  # fmt: skip


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, DEPLOY))
def test_valid_against_kubernetes_schemas(path):
    for doc in documents(path):
        # strict: an unknown (misspelt) field is an error, not ignored
        kubernetes_validate.validate(doc, K8S, strict=True)
        if doc["kind"] != "Namespace" and not doc["kind"].startswith(("RuntimeClass", "ValidatingAdmission")):
            assert doc["metadata"]["namespace"] == "inclavare-system", doc["metadata"]["name"]


def test_a_misspelt_field_is_caught():
    """The validation above can fail: the same schemas refuse a typo."""
    runtime_class = everything()[("RuntimeClass", "rune")]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**runtime_class, "handlr": "rune"}, K8S, strict=True)


def test_runtime_class_matches_containerd_and_the_plugin_s_label():
    rc = everything()[("RuntimeClass", "rune")]
    assert rc["handler"] == containerd.HANDLER
    assert yaml.safe_load(node.RUNTIME_CLASS)["handler"] == rc["handler"]  # what `node install` prints
    assert rc["scheduling"]["nodeSelector"] == {features.NODE_LABEL: "true"}
    assert set(rc["overhead"]["podFixed"]) == {"cpu", "memory"}


def node_daemonset():
    ds = everything()[("DaemonSet", "inclavare-node")]
    spec = ds["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec["containers"] + spec["initContainers"]}
    return spec, containers


def mounted(container: dict, spec: dict) -> dict[str, str]:
    """container path -> host path, for the container's hostPath volume mounts."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    return {m["mountPath"]: volumes[m["name"]]["hostPath"]["path"] for m in container["volumeMounts"]
            if "hostPath" in volumes[m["name"]]}  # fmt: skip


def test_device_plugin_arguments_are_the_command_s_and_its_host_paths_are_mounted():
    spec, containers = node_daemonset()
    dp = containers["device-plugin"]
    assert dp["command"][:2] == ["inclavare", "device-plugin"]
    args = device_plugin_cli._parser().parse_args(dp["command"][2:])
    assert args.kubelet_dir == plugin.KUBELET_DIR
    assert args.rune == plugin.Options.rune == os.path.join("/usr/local", "bin", "rune")  # node install's prefix
    assert args.feature_file == args.host_root + features.FEATURE_FILE
    hostpaths = mounted(dp, spec)
    assert hostpaths[plugin.KUBELET_DIR] == plugin.KUBELET_DIR

    def visible(host_path: str) -> bool:  # a host path the plugin reads under --host-root is mounted there
        inside = args.host_root + host_path
        return any((inside + "/").startswith(c + "/") and host_path.startswith(h) for c, h in hostpaths.items())

    for path in (*ENCLAVE_NODES, *PROVISION_NODES, SYSFS_EPC.split("*")[0], CPUINFO, args.rune, AESMD_DIR,
                 features.FEATURE_FILE):  # fmt: skip
        assert visible(path), path
    config_mount = next(m for m in dp["volumeMounts"] if args.config.startswith(m["mountPath"] + "/"))
    cm = everything()[("ConfigMap", "inclavare-node")]
    text = cm["data"][os.path.basename(args.config)].encode()
    assert dp_config.parse(text, args.config, Settings()).enclave_memory_mib > 0
    assert config_mount["name"] in {
        v["name"] for v in spec["volumes"] if v.get("configMap", {}).get("name") == "inclavare-node"
    }
    assert dp["securityContext"]["privileged"] is False
    assert dp["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False


def test_install_script_runs_inclavare_node_as_the_command_parses_it():
    spec, containers = node_daemonset()
    script = everything()[("ConfigMap", "inclavare-node")]["data"]["node-install.sh"]
    assert subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True).returncode == 0
    assert containers["install"]["command"][-1].endswith("/node-install.sh")
    shell = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in script.splitlines()
        if line.startswith(("PREFIX=", "STATE="))
    }
    calls = [shlex.split(line.strip().replace("$PREFIX", shell["PREFIX"]).replace("$STATE", shell["STATE"]))
             for line in script.splitlines() if "/bin/inclavare node " in line]  # fmt: skip
    assert {c[2] for c in calls} == {"install", "uninstall"}
    for call in calls:
        args = node_cli._parser().parse_args(call[2:])
        assert args.prefix == "/usr/local"
        assert os.path.join(args.prefix, "bin", "rune") == plugin.Options.rune
    assert f"$PREFIX/lib/{os.path.basename(node.home('/'))}/install.json" in script  # what uninstall needs
    assert containers["install"]["securityContext"]["privileged"] is True
    assert spec["hostPID"] is True  # nsenter --target 1


def test_admission_policy_names_rune_s_variable():
    policy = everything()[("ValidatingAdmissionPolicy", "inclavare-enclave-memory-grant")]
    assert f"'{MEMORY_GRANT_ENV}'" in policy["spec"]["validations"][0]["expression"]
    binding = everything()[("ValidatingAdmissionPolicyBinding", "inclavare-enclave-memory-grant")]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]


def kbs_pod():
    deployment = everything()[("Deployment", "kbs")]
    spec = deployment["spec"]["template"]
    return deployment, spec, spec["spec"]["containers"][0]


def kbs_toml() -> dict:
    return tomllib.loads(everything()[("ConfigMap", "kbs-config")]["data"]["kbs.toml"])


def test_kbs_config_is_read_where_it_is_mounted_and_parses(monkeypatch):
    deployment, _, kbs = kbs_pod()
    env = {e["name"]: e for e in kbs["env"]}
    path = env[ENV_CONFIG]["value"]
    assert any(path == m["mountPath"] + "/kbs.toml" for m in kbs["volumeMounts"])
    doc = kbs_toml()
    # the DSN's variable is set from the Secret the manifest says, and that key exists
    dsn_env = doc["storage"]["dsn_env"]
    ref = env[dsn_env]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in everything()[("Secret", ref["name"])]["stringData"]
    monkeypatch.setenv(dsn_env, "postgresql://kbs@db/kbs")
    doc["admin"]["keys"] = []  # the public key files are Secrets, read in the integration test
    config = parse_config(doc, "kbs.toml")
    assert config.storage.type == "postgres"
    assert deployment["spec"]["replicas"] >= 2


def test_every_file_the_kbs_config_names_comes_from_a_mounted_volume():
    _, template, kbs = kbs_pod()
    doc = kbs_toml()
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    files = [doc["http"]["tls_cert"], doc["http"]["tls_key"], doc["token"]["signing_key"],
             *(k["public_key"] for k in doc["admin"]["keys"])]  # fmt: skip
    for file in files:
        mount = next(m for m in kbs["volumeMounts"] if os.path.dirname(file) == m["mountPath"])
        source = volumes[mount["name"]]
        secret = everything()[("Secret", source["secret"]["secretName"])]
        assert os.path.basename(file) in secret["stringData"], file
    for directory in doc["attestation"]["collateral"]:
        assert any(m["mountPath"] == directory for m in kbs["volumeMounts"])


def test_kbs_ports_probes_and_prometheus_agree():
    _, template, kbs = kbs_pod()
    port = int(kbs_toml()["http"]["listen"].rpartition(":")[2])
    assert port == HttpConfig().port
    (container_port,) = kbs["ports"]
    assert container_port["containerPort"] == port
    for probe in (kbs["readinessProbe"], kbs["livenessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz"
        assert probe["httpGet"]["port"] == container_port["name"]
        assert probe["httpGet"]["scheme"] == "HTTPS"  # the config has tls_cert/tls_key
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    service = everything()[("Service", "kbs")]
    assert service["spec"]["ports"][0]["targetPort"] == container_port["name"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    policy = everything()[("NetworkPolicy", "kbs")]
    assert policy["spec"]["ingress"][0]["ports"][0]["port"] == port


def test_postgres_is_reachable_from_the_kbs_only():
    statefulset = everything()[("StatefulSet", "kbs-postgres")]
    pg = statefulset["spec"]["template"]["spec"]["containers"][0]
    port = pg["ports"][0]["containerPort"]
    dsn = everything()[("Secret", "kbs-postgres")]["stringData"]["dsn"]
    assert dsn.endswith(f"@kbs-postgres:{port}/kbs")  # the headless Service's name and the port
    assert everything()[("Service", "kbs-postgres")]["spec"]["ports"][0]["port"] == port
    policy = everything()[("NetworkPolicy", "kbs-postgres")]["spec"]
    assert policy["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "kbs"}}}]
    assert policy["ingress"][0]["ports"][0]["port"] == port
    assert policy["egress"] == []


def test_secrets_are_placeholders():
    for (kind, name), doc in everything().items():
        if kind == "Secret":
            assert "data" not in doc, name  # nothing base64-hidden
            for key, value in doc["stringData"].items():
                assert "REPLACE" in value, (name, key)
                assert "-----BEGIN" not in value
