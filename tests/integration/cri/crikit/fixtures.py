"""The saved sandbox/container config.json pair in tests/fixtures/cri.

Saved from a live run (INCLAVARE_CRI_SAVE_FIXTURES=<dir>, see the README
there) with the run's random values replaced by fixed placeholders, so
that other tests can feed rune what containerd's CRI really writes. The live
test also compares the saved pair's shape (annotation keys, namespaces,
mounts, args) with what containerd writes now: a containerd upgrade that
changes it shows up as a failure here, not as stale fixtures.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .images import ROOT

SAVED = os.path.join(ROOT, "tests", "fixtures", "cri")
ENV = "INCLAVARE_CRI_SAVE_FIXTURES"
FILES = ("sandbox.config.json", "container.config.json")


def placeholders(containerd: Any, pod: Any, cid: str) -> dict[str, str]:
    sandbox_pid = containerd.rune_state(pod.id)["pid"]
    node = os.uname().nodename
    return {
        containerd.base: "/var/lib/cri-test",
        pod.id: "SANDBOX_ID",
        cid: "CONTAINER_ID",
        pod.config.metadata.uid: "POD_UID",
        containerd.cgroup_parent: "/kubepods",
        f"/proc/{sandbox_pid}/": "/proc/SANDBOX_PID/",
        # host-network pods get the node's name (json.dumps spacing, as normalize writes it)
        f'"HOSTNAME={node}"': '"HOSTNAME=NODE_NAME"',
        f'"hostname": "{node}"': '"hostname": "NODE_NAME"',
    }


def normalize(config: dict[str, Any], subs: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(config, indent=2, sort_keys=True)
    for value, name in sorted(subs.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(value, name)
    return dict(json.loads(text))


def save_if_asked(containerd: Any, pod: Any, cid: str, sandbox: dict[str, Any], container: dict[str, Any]) -> None:
    out = os.environ.get(ENV)
    if not out:
        return
    subs = placeholders(containerd, pod, cid)
    os.makedirs(out, exist_ok=True)
    for name, config in zip(FILES, (sandbox, container), strict=True):
        with open(os.path.join(out, name), "w") as f:
            json.dump(normalize(config, subs), f, indent=2, sort_keys=True)
            f.write("\n")


def shape(config: dict[str, Any]) -> dict[str, Any]:
    """What must not drift: the parts rune's behaviour depends on, without run-specific values."""
    linux = config.get("linux", {})
    return {
        "annotations": sorted(config.get("annotations", {})),
        "args": config["process"]["args"],
        "namespaces": [(ns["type"], "path" in ns) for ns in linux.get("namespaces", [])],
        "mounts": [(m["destination"], m.get("type")) for m in config.get("mounts", [])],
        "resources": sorted(linux.get("resources", {})),
        "maskedPaths": linux.get("maskedPaths"),
        "readonlyPaths": linux.get("readonlyPaths"),
        "capabilities": config["process"].get("capabilities"),
    }


def check_against_saved(sandbox: dict[str, Any], container: dict[str, Any]) -> None:
    for name, live in zip(FILES, (sandbox, container), strict=True):
        with open(os.path.join(SAVED, name)) as f:
            saved = json.load(f)
        assert shape(saved) == shape(live), f"{name} drifted from what containerd writes now: regenerate it (README)"
