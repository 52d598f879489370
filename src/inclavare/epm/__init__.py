"""`inclavare epm`: the enclave pool manager, with the carriers' bundle caches.

Inclavare Containers' epm was a host daemon serving ``v1alpha1.EnclavePoolManager``
(gRPC, on /var/run/epm/epm.sock) that kept what was expensive to make:
shim-rune's carriers saved the enclaves they built and signed there
(cache0, the image; cache1, the unsigned enclave; cache2, the signed one),
so the next pod of the same image skipped the build and the signing. This
is that service, for the carriers here (src/inclavare/carrier/bundle_cache.py):

    config.py   /etc/epm/config.toml: the original's keys and the cache bounds
    store.py    metadata in SQLite, data on disk; size and age bounds; crash-safe
    files.py    copying in and out without following links
    service.py  the gRPC service (api.proto under proto/github.com/inclavare-containers)
    server.py   the unix socket, root only: 0600 in a 0700 directory, SO_PEERCRED checked
    client.py   the client the carrier uses (no server code, grpc imported on use)
    errors.py   EpmError, CacheError (a gRPC status), EpmUnavailable (the client)
    pool/       the warm enclave pool: ready instances of the built-in runtimes, claimed by init

What changed from the original: the metadata is SQLite (bolt before), the
entries are bounded by size and age (they only grew), ListCache passes its
arguments in the right order and pages after ``lastCacheID``, a missing entry
is NOT_FOUND, and the socket serves root alone (the original's was 0755-dir,
0777-umask and unchecked). In place of the original's live-enclave pool
(``enclave-cache-pool``) there is :mod:`.pool` (docs/epm.md, "The warm pool").
"""
