"""The options a runtime handler gives the shim: each Any type containerd sends, the config file."""

from __future__ import annotations

import os

import pytest

from inclavare.shim import pb
from inclavare.shim.errors import InvalidArgument
from inclavare.shim.options import DEFAULT_ROOT, ShimOptions, apply_config, decode


def packed(message):
    any_ = pb.wkt.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())
    return any_.type_url, any_.value


def config(tmp_path, text: str, mode: int = 0o644) -> str:
    path = tmp_path / "shim-rune.toml"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_no_options_are_the_defaults():
    opts = decode("", b"")
    assert (opts.binary_name, opts.root, opts.systemd_cgroup, opts.enclave_required) == ("rune", DEFAULT_ROOT,
                                                                                         False, False)  # fmt: skip


def test_runc_options_as_a_client_sends_them():
    msg = pb.runc.Options(binary_name="/usr/local/bin/rune", root="/run/r", systemd_cgroup=True, io_uid=100000,
                          io_gid=100000, no_pivot_root=True, shim_cgroup="/shims")  # fmt: skip
    opts = decode(*packed(msg))
    assert (opts.binary_name, opts.root, opts.systemd_cgroup) == ("/usr/local/bin/rune", "/run/r", True)
    assert (opts.io_uid, opts.io_gid, opts.no_pivot_root, opts.shim_cgroup) == (100000, 100000, True, "/shims")
    # with the prefix other protobuf libraries write
    assert decode("type.googleapis.com/containerd.runc.v1.Options", msg.SerializeToString()).root == "/run/r"


def test_ctr_create_options_for_uidmap():
    """ctr run --uidmap with a runtime that is not io.containerd.runc.* sends runctypes.CreateOptions."""
    opts = decode(*packed(pb.runc_legacy.CreateOptions(io_uid=100000, io_gid=100000)))
    assert (opts.io_uid, opts.io_gid, opts.binary_name) == (100000, 100000, "rune")


def test_criu_settings_are_refused():
    with pytest.raises(InvalidArgument, match="CRIU settings: rune has no checkpoint/restore"):
        decode(*packed(pb.runc.Options(criu_path="/usr/sbin/criu")))


def test_unknown_and_malformed_options():
    with pytest.raises(InvalidArgument, match=r"unsupported type 'example\.Options'"):
        decode("example.Options", b"")
    with pytest.raises(InvalidArgument, match=r"^shim options: containerd.runc.v1.Options: "):
        decode("containerd.runc.v1.Options", b"\xff\xff\xff")


def test_config_file_through_runtime_options(tmp_path):
    path = config(tmp_path, 'binary_name = "/opt/rune"\nroot = "/run/conf"\nenclave_required = true\n'
                            'carrier_config = "/etc/c.toml"\n')  # fmt: skip
    opts = decode(*packed(pb.runtime_options.Options(config_path=path)))
    assert (opts.binary_name, opts.root, opts.enclave_required, opts.config_path) == ("/opt/rune", "/run/conf",
                                                                                       True, path)  # fmt: skip
    assert opts.carrier_config == "/etc/c.toml"


@pytest.mark.parametrize(("text", "error"), [
    ('enclave_requird = true\n', "enclave_requird: unknown setting (known: binary_name, carrier_config, "
                                 "enclave_required, root, systemd_cgroup)"),
    ('carrier_config = "c.toml"\n', "carrier_config: must be an absolute path"),
    ('systemd_cgroup = "yes"\n', "systemd_cgroup: must be true or false"),
    ('root = "relative"\n', "root: must be an absolute path"),
    ('binary_name = ""\n', "binary_name: must not be empty"),
    ('root = \n', "line 1: "),
])  # fmt: skip
def test_config_file_errors_name_file_and_key(tmp_path, text, error):
    path = config(tmp_path, text)
    with pytest.raises(InvalidArgument) as err:
        apply_config(ShimOptions(), path)
    assert str(err.value).startswith(f"{path}: {error}")


@pytest.mark.skipif(os.geteuid() != 0, reason="the file must be root's: only root can make one")
def test_config_file_writable_by_others_is_refused(tmp_path):
    path = config(tmp_path, "enclave_required = false\n", mode=0o666)
    with pytest.raises(InvalidArgument, match=r"^shim configuration .*shim-rune\.toml: .*writable"):
        apply_config(ShimOptions(), path)


def test_options_survive_options_json():
    opts = ShimOptions()
    opts.root, opts.enclave_required, opts.io_uid = "/r", True, 7
    back = ShimOptions.from_dict(opts.to_dict())
    assert back.to_dict() == opts.to_dict()
    assert ShimOptions.from_dict({"root": 5, "bogus": 1}).root == DEFAULT_ROOT  # wrong types are ignored


def test_a_relative_binary_path_is_refused(tmp_path):
    """`delete` runs in the bundle: ./rune there is beside the container's rootfs."""
    path = config(tmp_path, 'binary_name = "./rune"\n')
    with pytest.raises(InvalidArgument, match=r"binary_name: './rune': an absolute path or a name in \$PATH"):
        apply_config(ShimOptions(), path)
    with pytest.raises(InvalidArgument, match=r"binary_name: 'bin/rune'"):
        decode(*packed(pb.runc.Options(binary_name="bin/rune")))
    assert decode(*packed(pb.runc.Options(binary_name="rune"))).binary_name == "rune"
