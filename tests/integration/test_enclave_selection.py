"""Enclave selection fails closed: typos, "enclave required", the Kubernetes sandbox, state/list.

runtime/enclave_setup.py decides; these tests go through `rune` as a
runtime handler would call it (docs/architecture.md, "Enclave containers").
"""

from __future__ import annotations

import json
import os

import pytest

from inclavare.testing.bundles import base_config

pytestmark = pytest.mark.root


def with_annotations(args: list[str], **annotations: str) -> dict:
    cfg = base_config(args)
    cfg["annotations"] = dict(annotations)
    return cfg


def enclave(pal: str) -> dict[str, str]:
    return {"enclave.type": "software", "enclave.runtime.path": pal}


def refused(rune, bundle_path: str, cid: str, state_root: str, *flags: str) -> str:
    r = rune(*flags, "run", "--bundle", bundle_path, cid)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1, r.stderr
    assert not os.path.exists(os.path.join(state_root, cid))
    return r.stderr


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("enclave-type", "enclave.type"),
        ("enclave_type", "enclave.type"),
        ("Enclave.Type", "enclave.type"),
        ("ENCLAVE_TYPE", "enclave.type"),
        ("encalve.type", "enclave.type"),
    ],
)
def test_a_near_miss_annotation_never_runs_the_workload(rune, bundle, state_root, key, meant):
    cfg = with_annotations(["true"], **{key: "software", "enclave.runtime.path": "wasm"})
    err = refused(rune, bundle(cfg), "typo", state_root)
    assert f"config.json: annotations.{key}: not an enclave setting: did you mean {meant}?" in err


@pytest.mark.parametrize(("key", "meant"), [("ENCLAVE-TYPE", "ENCLAVE_TYPE"), ("enclave_type", "ENCLAVE_TYPE"),
                                            ("ENCLAVE_TPYE", "ENCLAVE_TYPE")])  # fmt: skip
def test_a_near_miss_variable_never_runs_the_workload(rune, bundle, state_root, key, meant):
    cfg = base_config(["true"])
    cfg["process"]["env"] += [f"{key}=software", "ENCLAVE_RUNTIME_PATH=wasm"]
    err = refused(rune, bundle(cfg), "typo", state_root)
    assert f"config.json: process.env {key}: " in err
    assert meant in err


def test_settings_without_a_type_are_refused(rune, bundle, state_root):
    err = refused(rune, bundle(with_annotations(["true"], **{"enclave.runtime.path": "wasm"})), "notype", state_root)
    assert "config.json: annotations.enclave.runtime.path: is an enclave setting, but enclave.type" in err


def test_enclave_required_refuses_a_plain_container(rune, bundle, state_root, pal):
    err = refused(rune, bundle(base_config(["true"])), "plain", state_root, "--enclave-required")
    assert err.rstrip().endswith(
        "config.json: annotations.enclave.type: this runtime runs enclave containers only "
        '(rune --enclave-required), and the container asks for none"'
    )
    r = rune("--enclave-required", "run", "--bundle", bundle(with_annotations(["true"], **enclave(pal("v2")))), "e")
    assert (r.returncode, r.stderr) == (0, "")


def test_enclave_required_by_the_node_configuration(rune, bundle, state_root, tmp_path, pal_dir):
    config = tmp_path / "rune.toml"
    config.write_text(f'[enclave]\npal_dirs = ["{pal_dir}"]\nrequired = true\n')
    err = refused(rune, bundle(base_config(["true"])), "plain", state_root, "--config", str(config))
    assert f"(enclave.required in {config})" in err


def sandbox_config(cid: str, sandbox_id: str, pal: str) -> dict:
    """What containerd's CRI writes for a pod's sandbox, with pod-level enclave annotations passed through."""
    return with_annotations(["sleep", "1000"], **enclave(pal), **{
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": sandbox_id,
        "io.kubernetes.cri.sandbox-name": "pod",
    })  # fmt: skip


def test_the_sandbox_container_runs_plainly_even_when_enclaves_are_required(rune, bundle, pal):
    b = bundle(sandbox_config("pause1", "pause1", pal("v2")))
    rune("--enclave-required", "run", "-d", "--bundle", b, "pause1", check=True)
    state = json.loads(rune("state", "pause1").stdout)
    assert "enclave" not in state  # pod-level settings are for the pod's containers
    assert state["status"] == "running"
    with open(f"/proc/{state['pid']}/cmdline", "rb") as f:
        cmdline = f.read()
    assert cmdline == b"sleep\x001000\x00"  # exec'd as a plain process, not an init-runelet
    rune("kill", "pause1", "KILL", check=True)


def test_a_container_cannot_pass_for_the_sandbox(rune, bundle, state_root, pal):
    b = bundle(sandbox_config("app", "the-real-sandbox", pal("v2")))
    err = refused(rune, b, "app", state_root, "--enclave-required")
    assert ("config.json: annotations.io.kubernetes.cri.container-type: says sandbox, "
            "but io.kubernetes.cri.sandbox-id is not this container's id (app)") in err  # fmt: skip


def test_a_pods_container_is_an_enclave_by_the_pod_annotations(rune, bundle, pal):
    cfg = with_annotations(["sleep", "1000"], **enclave(pal("v2")), **{
        "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pause1"})  # fmt: skip
    rune("--enclave-required", "run", "-d", "--bundle", bundle(cfg), "app", check=True)
    state = json.loads(rune("state", "app").stdout)
    assert state["enclave"]["type"] == "software"
    rune("kill", "app", "KILL", check=True)


def test_state_and_list_show_the_enclave_given_by_env(rune, bundle, pal):
    cfg = base_config(["sleep", "1000"])
    cfg["process"]["env"] += ["ENCLAVE_TYPE=software", f"ENCLAVE_RUNTIME_PATH={pal('v2')}",
                              "ENCLAVE_RUNTIME_ARGS=debug"]  # fmt: skip
    rune("run", "-d", "--bundle", bundle(cfg), "byenv", check=True)
    rune("run", "-d", "--bundle", bundle(base_config(["sleep", "1000"])), "plain", check=True)
    want = {"type": "software", "path": pal("v2"), "args": "debug", "loglevel": "info",
            "sources": {"type": "process.env ENCLAVE_TYPE", "runtime": "process.env ENCLAVE_RUNTIME_PATH",
                        "args": "process.env ENCLAVE_RUNTIME_ARGS"}}  # fmt: skip
    assert json.loads(rune("state", "byenv").stdout)["enclave"] == want
    rows = {r["id"]: r for r in json.loads(rune("list", "--format", "json").stdout)}
    assert rows["byenv"]["enclave"] == want
    assert "enclave" not in rows["plain"]
    table = rune("list").stdout.splitlines()
    assert table[0].split()[-1] == "ENCLAVE"
    assert table[1].split()[-1] == f"software/{pal('v2')}"
    assert table[2].split()[-1] == "-"
    for cid in ("byenv", "plain"):
        rune("kill", cid, "KILL", check=True)


def test_a_configuration_others_can_write_is_refused(rune, bundle, tmp_path, state_root):
    config = tmp_path / "rune.toml"
    config.write_text("[enclave]\nrequired = false\n")
    os.chmod(config, 0o666)
    err = refused(rune, bundle(base_config(["true"])), "c", state_root, "--config", str(config))
    assert f"rune configuration {config}: {config} is writable by group or others" in err


def test_a_misspelt_configuration_key_is_refused(rune, bundle, tmp_path, state_root):
    config = tmp_path / "rune.toml"
    config.write_text("[enclave]\nrequird = true\n")
    err = refused(rune, bundle(base_config(["true"])), "c", state_root, "--config", str(config))
    assert f"{config}: enclave.requird: unknown setting (known: pal_dirs, pool_socket, required)" in err
