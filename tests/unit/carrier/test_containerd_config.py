"""The rune runtime entry in containerd's config.toml: added idempotently, removed exactly, nothing else touched."""

from __future__ import annotations

import tomllib

import pytest

from inclavare.carrier.containerd import BEGIN, add_runtime, has_runtime, remove_runtime
from inclavare.carrier.errors import InstallError

SHIM = "/usr/local/bin/containerd-shim-rune-v2"
CRI2 = ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes")
# Debian's /etc/containerd/config.toml, as shipped (comments and indentation kept on purpose).
DEBIAN = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""
OPERATOR = """# the operator's own file
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
    runtime_type = "io.containerd.kata.v2"
"""


def runtimes(text: str, path: tuple[str, ...] = CRI2) -> dict:
    doc = tomllib.loads(text)
    for key in path:
        doc = doc[key]
    return doc


@pytest.mark.parametrize("original", [DEBIAN, OPERATOR, DEBIAN.rstrip("\n") + "\n\n\n"])
def test_added_then_removed_byte_for_byte(original):
    text = add_runtime(original, SHIM, "config.toml")
    assert text.startswith(original)
    assert runtimes(text)["rune"] == {
        "runtime_type": "io.containerd.rune.v2",
        "runtime_path": SHIM,
        "pod_annotations": ["enclave.*"],
        "container_annotations": ["enclave.*"],
    }
    assert remove_runtime(text) == original


def test_the_operators_runtimes_and_settings_are_kept():
    text = add_runtime(OPERATOR, SHIM, "config.toml")
    assert sorted(runtimes(text)) == ["kata", "runc", "rune"]
    assert runtimes(text)["runc"]["options"] == {"SystemdCgroup": True}
    assert tomllib.loads(text)["root"] == "/var/lib/containerd"


def test_containerds_default_runc_is_declared_when_the_file_names_no_runtime():
    """containerd 1.6 drops its built-in runc as soon as the file names any runtime (config dump shows it)."""
    text = add_runtime(DEBIAN, SHIM, "config.toml")
    assert runtimes(text)["runc"] == {"runtime_type": "io.containerd.runc.v2"}
    assert remove_runtime(text) == DEBIAN


def test_installing_twice_is_installing_once():
    once = add_runtime(DEBIAN, SHIM, "config.toml")
    assert add_runtime(once, SHIM, "config.toml") == once
    moved = add_runtime(once, "/opt/x/bin/containerd-shim-rune-v2", "config.toml")
    assert moved.count(BEGIN) == 1
    assert runtimes(moved)["rune"]["runtime_path"] == "/opt/x/bin/containerd-shim-rune-v2"
    assert remove_runtime(moved) == DEBIAN


def test_a_new_file():
    text = add_runtime("", SHIM, "config.toml")
    assert tomllib.loads(text)["version"] == 2
    assert sorted(runtimes(text)) == ["runc", "rune"]
    assert remove_runtime(text) == "version = 2\n"
    assert has_runtime(text)
    assert not has_runtime(remove_runtime(text))


@pytest.mark.parametrize(
    ("original", "path"),
    [
        ("root = '/x'\n", ("plugins", "cri", "containerd", "runtimes")),  # no version: containerd reads version 1
        ("version = 3\n", ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")),
    ],
)
def test_config_versions_1_and_3(original, path):
    text = add_runtime(original, SHIM, "config.toml")
    assert runtimes(text, path)["rune"]["runtime_type"] == "io.containerd.rune.v2"
    assert remove_runtime(text) == original


@pytest.mark.parametrize(
    ("original", "message"),
    [
        (OPERATOR.replace("kata", "rune"), "config.toml: a runtime named 'rune' is already configured"),
        ("version = 7\n", "config.toml: version = 7: only containerd config versions 1, 2 and 3 are known"),
        ("version = 2\n[plugins\n", "config.toml: not valid TOML: "),
        ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
         'runtimes = { runc = { runtime_type = "x" } }\n',
         "config.toml: the file with the rune runtime added: not valid TOML"),
        ('version = 2\nplugins = "x"\n', "config.toml: plugins is not a table"),
    ],
)  # fmt: skip
def test_what_cannot_be_appended_to_is_refused(original, message):
    with pytest.raises(InstallError) as info:
        add_runtime(original, SHIM, "config.toml")
    assert str(info.value).startswith(message)


def test_paths_that_would_break_the_toml_are_refused():
    with pytest.raises(InstallError, match="a path containing quotes"):
        add_runtime(DEBIAN, '/opt/"x"/containerd-shim-rune-v2', "config.toml")


def test_removing_from_a_file_without_the_block_changes_nothing():
    assert remove_runtime(OPERATOR) == OPERATOR
