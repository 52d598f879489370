"""Attesters (RATS role "Attester"): produce evidence about the TEE we run in.

One module per TEE and a registry keyed by TEE name (no if-chain; the
counterpart of :mod:`..verifiers`)::

    software   :mod:`.software`  reports of the built-in runtimes, signed with the host key
    sgx        :mod:`.sgx`       a PAL's local REPORT + a DCAP quote from aesmd (:mod:`.aesm`)
    tdx        :mod:`.tsm`       a TD quote through Linux configfs-tsm
    sev-snp    :mod:`.tsm`       an SNP report through Linux configfs-tsm

Recipe::

    from inclavare.attestation.attesters import AttesterOptions, create
    attester = create("software", AttesterOptions(identity=identity, host_key=key))
    evidence = attester.collect_evidence(report_data)   # 64 bytes in, Evidence out

rats-tls instance names (``sgx_ecdsa``, ``tdx_ecdsa``, ``sev_snp``) are
accepted as aliases. Where the hardware or its host service is missing,
``collect_evidence`` raises :class:`NotSupportedOnPlatform`.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import REPORT_DATA_SIZE
from ..errors import AttesterError, NotSupportedOnPlatform, TsmRace
from .interface import Attester, AttesterOptions, LocalReporter
from .sgx import SgxAttester
from .software import SoftwareAttester
from .tsm import TsmAttester, snp_from_options, tdx_from_options

REGISTRY: dict[str, Callable[[AttesterOptions], Attester]] = {
    "software": SoftwareAttester.from_options,
    "sgx": SgxAttester.from_options,
    "tdx": tdx_from_options,
    "sev-snp": snp_from_options,
}
ALIASES = {"sgx_ecdsa": "sgx", "tdx_ecdsa": "tdx", "sev_snp": "sev-snp"}  # rats-tls attester names


def create(name: str, options: AttesterOptions | None = None) -> Attester:
    """The attester registered as ``name`` (or a rats-tls alias), configured from ``options``."""
    factory = REGISTRY.get(ALIASES.get(name, name))
    if factory is None:
        raise AttesterError(f"attester {name!r}: unknown (known: {', '.join(REGISTRY)})")
    return factory(options if options is not None else AttesterOptions())


__all__ = [
    "ALIASES",
    "REGISTRY",
    "REPORT_DATA_SIZE",
    "Attester",
    "AttesterError",
    "AttesterOptions",
    "LocalReporter",
    "NotSupportedOnPlatform",
    "SgxAttester",
    "SoftwareAttester",
    "TsmAttester",
    "TsmRace",
    "create",
]
