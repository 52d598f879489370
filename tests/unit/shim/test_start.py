"""What `start` computes: the group, its socket address, the address file; and `delete`'s quick answer."""

from __future__ import annotations

import hashlib
import json
import os

from inclavare.shim import cleanup
from inclavare.shim.start import group_of, socket_address, write_address


def test_socket_address_is_upstreams():
    """util_unix.go SocketAddress: sha256 of filepath.Join(address, ns, id) under /run/containerd/s."""
    want = hashlib.sha256(b"/run/containerd/containerd.sock/k8s.io/pod-1").hexdigest()
    assert socket_address("/run/containerd/containerd.sock", "k8s.io", "pod-1") == f"unix:///run/containerd/s/{want}"


def test_group_is_the_pod_then_the_runc_group_label_then_the_container(tmp_path):
    def group(annotations):
        (tmp_path / "config.json").write_text(json.dumps({"annotations": annotations}))
        return group_of("c1", str(tmp_path))

    assert group({}) == "c1"
    assert group({"io.kubernetes.cri.sandbox-id": "pod"}) == "pod"
    assert group({"io.containerd.runc.v2.group": "g", "io.kubernetes.cri.sandbox-id": "pod"}) == "g"


def test_address_file_is_replaced_whole(tmp_path):
    write_address(str(tmp_path), "unix:///run/containerd/s/one")
    write_address(str(tmp_path), "unix:///run/containerd/s/two")
    assert (tmp_path / "address").read_text() == "unix:///run/containerd/s/two"
    assert os.listdir(tmp_path) == ["address"]


class Flags:
    namespace, id, bundle = "ns", "c1", ""


def test_delete_after_a_clean_delete_rpc_reports_nothing(tmp_path):
    """containerd runs `delete` after every shim exit; after a Delete RPC nothing is left to report."""
    flags = Flags()
    flags.bundle = str(tmp_path)
    (tmp_path / "options.json").write_text(json.dumps({"root": str(tmp_path / "rune-root")}))
    assert cleanup.delete(flags) == b""  # a DeleteResponse with no field set


def test_delete_after_a_shim_died_reports_sigkill_and_the_pid(tmp_path):
    from inclavare.shim import pb

    flags = Flags()
    flags.bundle = str(tmp_path)
    (tmp_path / "options.json").write_text(json.dumps({"root": str(tmp_path / "rune-root")}))
    (tmp_path / "init.pid").write_text("4242")
    resp = pb.api.DeleteResponse.FromString(cleanup.delete(flags))
    assert (resp.pid, resp.exit_status) == (4242, 137)
    assert resp.exited_at.seconds > 0
