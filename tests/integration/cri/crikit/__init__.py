"""A test kit for the Kubernetes path: kubelet -> containerd's CRI plugin -> runc shim -> rune.

There is no kubelet here: the tests play its part over the CRI's gRPC API
(the subset in proto/k8s.io/cri-api, generated into inclavare._proto) against
a private containerd 1.6 whose `rune` runtime handler runs build/rune through
containerd-shim-runc-v2.

- daemon.py: the private containerd (config, start, and a teardown that
  leaves no process, mount or cgroup behind);
- images.py: the pause and busybox images, built here and imported locally
  (no registry is reachable);
- client.py: a small CRI client and the pod/container configs kubelet would send.
"""
