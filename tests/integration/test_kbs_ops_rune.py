"""What an enclave's owner sees when the broker does not trust the node, and the fix without a restart.

rune provisions a pinned wasm enclave from a TLS broker that trusts another
host key: ``rune create`` fails with one line naming the category (``no
trusted host key``), not just ``attestation failed``. The operator trusts the
node's key through the admin API (``inclavare enclave host-key`` output, as
is) and the same container starts, the broker never restarted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.testing import kbs as kbs_testing
from inclavare.testing.enclaves import pin_broker, set_enclave, wasm_bundle
from inclavare.testing.kbs import TlsBroker

pytestmark = pytest.mark.root

SECRET = b"trusted after the fact"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return kbs_testing.World.create(str(tmp_path_factory.mktemp("ops-rune")))


def test_an_untrusted_node_is_named_then_trusted_without_a_restart(rune, tmp_path, rootfs_cache, world, state_root):
    key = ed25519.Ed25519PrivateKey.generate()
    bundle, _ = wasm_bundle(str(tmp_path / "b"), key, rootfs_cache)
    with TlsBroker(world, "ops-kbs", trust_this_host=False) as kbs:
        pin_broker(bundle, key, [kbs.url], kbs.ca.pem)
        manifest = os.path.join(bundle, "rootfs/app/hello-wasm.toml")
        with kbs.admin(world) as admin:
            admin.set_resource("default/secret/greeting", SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(manifest, manifest + ".sig", os.path.join(bundle, "rootfs"))
        annotations = {"enclave.kbs.url": kbs.url, "enclave.kbs.resources": "default/secret/greeting"}
        set_enclave(bundle, "preopen=/run/secrets", args=["/app/hello.wasm", "read=/run/secrets/greeting"],
                    annotations=annotations)  # fmt: skip

        refused = rune("create", "--bundle", bundle, "ops-untrusted")
        assert refused.returncode == 1
        line = "secret provisioning: KBS answered 401 AttestationError: attestation failed: no trusted host key"
        assert re.fullmatch(rf"[^\n]*{line}[^\n]*\n", refused.stderr), refused.stderr
        assert not os.path.exists(os.path.join(state_root, "ops-untrusted"))

        printed = subprocess.run([sys.executable, "-m", "inclavare.cli.tool._main", "enclave", "host-key"],
                                 capture_output=True, check=True).stdout  # fmt: skip
        with kbs.admin(world) as admin:
            assert admin.add_collateral(printed, "host-key")["kind"] == "host-key"
        started = rune("run", "--bundle", bundle, "ops-trusted")
        assert started.returncode == 0, started.stderr
        assert SECRET.decode() in started.stdout
