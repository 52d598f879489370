"""Fixtures of the carrier tests: a small rootfs with the sample programs, bundles, configurations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from inclavare.testing.bundles import base_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SAMPLES = os.path.join(ROOT, "samples", "build")


@pytest.fixture(scope="session")
def samples() -> str:
    """samples/build with hello.wasm and hello-native (built now if `make setup` has not)."""
    if not all(os.path.exists(os.path.join(SAMPLES, n)) for n in ("hello.wasm", "hello-native")):
        subprocess.run(["make", "-s", "-C", os.path.dirname(SAMPLES)], check=True, timeout=120)
    return SAMPLES


@pytest.fixture
def bundle(tmp_path, samples):
    """bundle(args=..., env=..., annotations=..., memory=...) -> a bundle dir whose rootfs holds
    /app/hello.wasm, /app/hello (static ELF) and /bin/dynamic (this host's dynamically linked true)."""

    def make(args: list[str] | None = None, env: list[str] | None = None, annotations: dict[str, str] | None = None,
             memory: int | None = None, name: str = "c1") -> str:  # fmt: skip
        directory = tmp_path / name
        app = directory / "rootfs" / "app"
        app.mkdir(parents=True)
        (directory / "rootfs" / "bin").mkdir()
        shutil.copy(os.path.join(samples, "hello.wasm"), app / "hello.wasm")
        shutil.copy(os.path.join(samples, "hello-native"), app / "hello")
        shutil.copy(shutil.which("true") or "/bin/true", directory / "rootfs" / "bin" / "dynamic")
        cfg = base_config(args or ["/app/hello.wasm", "one"])
        cfg["process"]["env"] += env if env is not None else ["RUNE_CARRIER=wasm"]
        cfg["annotations"] = annotations or {}
        if memory is not None:
            cfg["linux"].setdefault("resources", {})["memory"] = {"limit": memory}
        (directory / "config.json").write_text(json.dumps(cfg))
        return str(directory)

    return make


@pytest.fixture
def node_config(tmp_path):
    """node_config(extra="", **signature) -> path of a carrier config.toml whose [signature] table has
    `signature` and, unless given, a node key in the test's tmp dir (never the node's real one)."""

    def write(extra: str = "", **signature: str) -> str:
        signature.setdefault("node_key", str(tmp_path / "node-key.pem"))
        lines = ["[signature]", *(f'{k} = "{v}"' for k, v in signature.items()), extra]
        path = tmp_path / "carrier.toml"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    return write


def load(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


def config_text(bundle: str) -> str:
    with open(os.path.join(bundle, "config.json")) as f:
        return f.read()
