"""Carriers: an ordinary container image made into a signed enclave at create time.

In Inclavare Containers, containerd-shim-rune-v2 runs a *carrier* at
Create, before `rune create`: it builds the enclave from the image, has it
measured and signed, and writes the result into the bundle, so that a pod
running a plain image yields an attestable enclave. This package is that
step, callable from the shim and on its own::

    from inclavare.carrier import prepare
    prepare(bundle, spec, options)      # mutates the bundle; raises one located error

    inclavare carrier prepare BUNDLE    # the same, from the command line

    flow.py          the main flow (what prepare does, in order)
    registry.py      choosing the carrier (RUNE_CARRIER / enclave.carrier); wasm, native
    workload.py      config.json -> program, argv, environment policy, memory
    broker.py        the key broker an enclave with KBS secrets trusts: the pod's URLs, the image's CA
    programs.py      is the entrypoint a wasm module / a static ELF program
    rootfs.py        reading and writing inside the rootfs without leaving it
    config.py        /etc/inclavare-containers/config.toml
    signers.py       the signing server, or the node's own key (mock signing)
    bundle_cache.py  the signed enclave of an image kept in epm (cache0/1/2), verified before use
    signing_server/  `inclavare signing-server`: the original API with TLS, auth and audit
    node.py          `inclavare node install|uninstall`: rune, the shim, containerd's entry
    containerd.py    the runtime entry in containerd's config.toml

See docs/kubernetes.md for the whole path, and docs/enclave-identity.md for
what the manifest, the measurement and the signature are.
"""

from __future__ import annotations

from .flow import MANIFEST, SIGNATURE, prepare

__all__ = ["MANIFEST", "SIGNATURE", "prepare"]
