"""An image's enclave settings stay out of the bundle unless the operator asks for them.

rune reads ``enclave.*`` annotations and ``ENCLAVE_*`` variables and loads
the enclave runtime they name on the host (docs/encrypted-images.md,
"Images and enclave settings"). The image here carries them by every route
the image config has: Env, Labels, and near-miss spellings of both.
"""

from __future__ import annotations

import json

import pytest
from image_helpers import entry, make_tar

from inclavare.image.build import build_image
from inclavare.image.unpack import unpack

SECRET = "value-that-must-not-be-printed"
PAL = "/var/lib/bundles/b/rootfs/lib/evil.so"
ENCLAVE_ENV = [
    "ENCLAVE_TYPE=software",
    f"ENCLAVE_RUNTIME_PATH={PAL}",
    f"ENCLAVE_RUNTIME_ARGS={SECRET}",
    "ENCLAVE_RUNTIME_LOGLEVEL=debug",
    "ENCLAVE_KBS_URL=http://attacker",
    "enclave_type=software",
    "Enclave-Runtime-Path=" + PAL,
    "enclave.type=software",
    " ENCLAVE_TYPE=software",
    "_ENCLAVE_TYPE=software",
    "\uff25\uff2e\uff23\uff2c\uff21\uff36\uff25_TYPE=software",  # fullwidth: NFKC folds it to ENCLAVE_TYPE
    "ENCLAVE\u200b_TYPE=software",  # a zero-width space
    "ENCLAVE_TYPE",  # no "=": a name alone
]
ENCLAVE_LABELS = {
    "enclave.type": "software",
    "enclave.runtime.path": PAL,
    "enclave.runtime.args": SECRET,
    "enclave.kbs.url": "http://attacker",
    "enclave-type": "software",
    "Enclave.Type": "software",
    "ENCLAVE_TYPE": "software",
    "ENCLAVE_RUNTIME_PATH": PAL,
    "enclave_runtime_path": PAL,
    " enclave.type": "software",
    "\uff45nclave.type": "software",
    "enclave.type\n": "software",
}
PLAIN_ENV = ["PATH=/usr/bin:/bin", "A=1", "MY_ENCLAVE=kept", "NOT_ENCLAVE_TYPE=kept"]
PLAIN_LABELS = {"org.example.enclave": "kept", "maintainer": "kept", "inclavare.enclave.type": "kept"}


@pytest.fixture
def image(tmp_path) -> str:
    path = str(tmp_path / "img")
    config = {"Cmd": ["/bin/true"], "Env": PLAIN_ENV[:2] + ENCLAVE_ENV + PLAIN_ENV[2:],
              "Labels": {**ENCLAVE_LABELS, **PLAIN_LABELS}}  # fmt: skip
    build_image(path, "v1", [(make_tar(entry("bin", "dir")), "gzip")], config)
    return path


def config_of(bundle) -> dict:
    return json.loads((bundle / "config.json").read_text())


def test_enclave_settings_are_not_copied(image, tmp_path) -> None:
    bundle = tmp_path / "b"
    result = unpack(image, "v1", str(bundle), rootless=True)
    spec = config_of(bundle)
    assert spec["process"]["env"] == PLAIN_ENV
    assert {
        k: v for k, v in spec["annotations"].items() if not k.startswith("org.opencontainers.image.")
    } == PLAIN_LABELS
    warnings = result.report.skipped
    assert len(warnings) == len(ENCLAVE_ENV) + len(ENCLAVE_LABELS)
    assert all("enclave settings are the operator's" in w and "\n" not in w for w in warnings)
    assert not [w for w in warnings if SECRET in w or PAL in w or "software" in w]
    assert any(w.startswith(f"{_digest(image)}: config.Env: ENCLAVE_RUNTIME_PATH not copied") for w in warnings)
    assert any(": config.Labels: enclave.type\\x0a not copied" in w for w in warnings)  # escaped, one line


def test_the_option_copies_them(image, tmp_path) -> None:
    bundle = tmp_path / "b"
    result = unpack(image, "v1", str(bundle), rootless=True, enclave_settings=True)
    spec = config_of(bundle)
    assert spec["process"]["env"] == PLAIN_ENV[:2] + ENCLAVE_ENV + PLAIN_ENV[2:]
    assert {k: spec["annotations"][k] for k in ENCLAVE_LABELS} == ENCLAVE_LABELS
    assert result.report.skipped == []


def test_cli_warns_one_line_per_setting_and_no_values(image, tmp_path, capsys) -> None:
    from inclavare.cli.tool._main import main

    assert main(["image", "unpack", "--rootless", f"{image}:v1", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(ENCLAVE_ENV) + len(ENCLAVE_LABELS)
    assert all(line.startswith("inclavare image: warning: ") for line in err)
    assert not [line for line in err if SECRET in line or PAL in line]
    assert main(["image", "unpack", "--rootless", "--enclave-settings-from-image", f"{image}:v1",
                 str(tmp_path / "c")]) == 0  # fmt: skip
    assert capsys.readouterr().err == ""
    assert f"ENCLAVE_RUNTIME_PATH={PAL}" in config_of(tmp_path / "c")["process"]["env"]


@pytest.mark.parametrize(
    "name",
    ["enclave", "ENCLAVE", "Enclave_X", "e.n.c.l.a.v.e", "-enclave-", "\uff45\uff4e\uff43\uff4c\uff41\uff56\uff45"],
)
def test_spellings(name) -> None:
    from inclavare.image.bundle import is_enclave_setting

    assert is_enclave_setting(name)


@pytest.mark.parametrize("name", ["PATH", "MY_ENCLAVE", "enclav", "inclavare.enclave.type", ""])
def test_not_enclave_settings(name) -> None:
    from inclavare.image.bundle import is_enclave_setting

    assert not is_enclave_setting(name)


def _digest(image: str) -> str:
    from inclavare.image.layout import Layout

    layout = Layout(image)
    return layout.manifest(layout.resolve("v1")).config.digest
