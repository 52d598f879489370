"""`inclavare device-plugin`: enclave memory and SGX devices as Kubernetes resources.

A kubelet device plugin (API v1beta1, gRPC over unix sockets in
/var/lib/kubelet/device-plugins; proto/k8s.io/kubelet/...):

* :mod:`.resources`  the resources and what a grant hands a container (sans-IO)
* :mod:`.node`       what the node has: SGX device nodes, EPC size, rune
* :mod:`.features`   node labels for scheduling, as an NFD feature file
* :mod:`.config`     the operator's settings (flags, a file re-read when it changes)
* :mod:`.server`     one resource's DevicePlugin service on its socket
* :mod:`.plugin`     the loop: scan, serve, register, re-register after a kubelet restart

rune enforces the enclave-memory grant (src/inclavare/runtime/memory_grant.py);
docs/kubernetes.md, "Enclave memory and the device plugin", tells the whole story.
Nothing here is imported by rune.
"""
