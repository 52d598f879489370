"""Node labels as an NFD feature file (deviceplugin/features.py)."""

from __future__ import annotations

import os

from inclavare.deviceplugin import features
from inclavare.deviceplugin.node import NodeScan, Sgx
from inclavare.deviceplugin.resources import Settings


def test_labels_of_an_sgx_node():
    sgx = Sgx(("/dev/sgx_enclave",), ("/dev/sgx_provision",), aesmd=True, epc_bytes=98566144, flc=True)
    assert features.labels(NodeScan(sgx, rune=True), Settings(2048)) == {
        "inclavare-enclave": "true",
        "inclavare-enclave-memory-mib": "2048",
        "inclavare-sgx": "true",
        "inclavare-sgx-flc": "true",
        "sgx.intel.com/epc": "98566144",  # as Intel's sgx_epchook prints it, for NFD's -resource-labels
    }
    assert features.NODE_LABEL == "feature.node.kubernetes.io/inclavare-enclave"


def test_write_is_atomic_and_only_on_change(tmp_path):
    path = str(tmp_path / "features.d" / "inclavare")
    text = features.render({"inclavare-enclave": "true"})
    assert features.write(path, text) is True
    first = os.stat(path).st_ino
    assert features.write(path, text) is False
    assert os.stat(path).st_ino == first
    assert features.write(path, features.render({})) is True
    assert os.stat(path).st_ino != first  # a new file renamed over the old: NFD never reads half of one
    assert sorted(os.listdir(tmp_path / "features.d")) == ["inclavare"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    features.remove(path)
    features.remove(path)
    assert not os.path.exists(path)
