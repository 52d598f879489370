"""Enclave containers: enclave runtimes, their configuration and the agent protocol.

Modules (each imported on its own; this package imports nothing, so rune's
plain-container path never pays for it):

- :mod:`.interface`  the ``EnclaveRuntime`` protocol every runtime implements
- :mod:`.registry`   ``enclave.runtime.path`` -> a PAL library or a Python runtime
- :mod:`.pal`        PAL shared libraries (API v1-v3) as enclave runtimes
- :mod:`.config`     ``enclave.*`` annotations / ``ENCLAVE_*`` env -> ``EnclaveConfig``
- :mod:`.agent`      sans-IO codec of the runelet <-> init-runelet protocol
- :mod:`.errors`     the errors of all of the above
"""

from __future__ import annotations
