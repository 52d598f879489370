"""Node labels for scheduling, as a Node Feature Discovery feature file.

NFD's worker reads every file in ``/etc/kubernetes/node-feature-discovery/features.d/``
(its "local" feature source) and labels the node with each ``name=value``
line; a name without a namespace becomes ``feature.node.kubernetes.io/<name>``,
which NFD allows by default. The plugin writes (atomically, and only when it
changes) and, when it stops, removes:

=============================  ===================================================================
line                           meaning
=============================  ===================================================================
inclavare-enclave=true         rune is installed and enclave containers can run here: the
                               RuntimeClass ``rune`` selects nodes on it (deploy/runtimeclass.yaml)
inclavare-enclave-memory-mib   the enclave memory the operator made available (MiB)
inclavare-sgx=true             the node has SGX device nodes
inclavare-sgx-flc=true         ... with flexible launch control (no launch tokens needed)
sgx.intel.com/epc=<bytes>      the EPC size, as Intel's sgx_epchook writes it: with NFD's
                               ``-extra-label-ns=sgx.intel.com -resource-labels=sgx.intel.com/epc``
                               it becomes the node's ``sgx.intel.com/epc`` extended resource
                               (Intel's unit, bytes; a device plugin counts whole devices only)
=============================  ===================================================================
"""

from __future__ import annotations

import os
import tempfile

from .node import NodeScan
from .resources import SGX_EPC, Settings

FEATURE_FILE = "/etc/kubernetes/node-feature-discovery/features.d/inclavare"
NFD_PREFIX = "feature.node.kubernetes.io/"
ENCLAVE = "inclavare-enclave"
NODE_LABEL = NFD_PREFIX + ENCLAVE  # what the RuntimeClass's nodeSelector names
_HEADER = "# written by `inclavare device-plugin` (src/inclavare/deviceplugin/features.py); do not edit\n"


def labels(scan: NodeScan, settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    if scan.rune:
        found[ENCLAVE] = "true"
        found[f"{ENCLAVE}-memory-mib"] = str(settings.enclave_memory_mib)
    if scan.sgx is not None and scan.sgx.enclave:
        found["inclavare-sgx"] = "true"
        if scan.sgx.flc:
            found["inclavare-sgx-flc"] = "true"
        if scan.sgx.epc_bytes:
            found[SGX_EPC] = str(scan.sgx.epc_bytes)
    return found


def render(found: dict[str, str]) -> str:
    return _HEADER + "".join(f"{name}={value}\n" for name, value in found.items())


def write(path: str, text: str) -> bool:
    """Replace `path` with `text` unless it already holds it (NFD may read at any moment:
    a temporary file renamed over it); True if it was written."""
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except OSError:
        pass
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".inclavare.")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
