"""epm's side of the warm enclave pool (src/inclavare/enclave/pool is the enclave's side).

    template.py  a ``[[pool.enclaves]]`` entry: the template bundle, its runtime and pool key
    spawn.py     one instance process: started, prepared, killed, reaped (by pidfd)
    manager.py   instances ready per key; fill, refill, re-spawn, back off; hand out once
    claims.py    the claim socket (root only) that init asks for an instance of its key
    metrics.py   hits, misses, ready, fill time: Prometheus text at ``GET /metrics``
    serve.py     the three together, as `inclavare epm serve` runs them

:class:`.serve.Pool` is what `inclavare epm serve` starts when its configuration
has ``[[pool.enclaves]]`` (docs/epm.md, "The warm pool"); without entries
there is no pool, no claim socket and no metrics listener, and every
container starts the unpooled way.
"""
