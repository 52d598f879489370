"""The evidence model: RATS roles, evidence kinds, typed claims per TEE and the attestation result.

Roles follow RFC 9334 (RATS architecture, section 3):

* the **Attester** produces :class:`Evidence` (an SGX/TDX quote, an SNP report,
  a Nitro document, software evidence, or an RA-TLS certificate carrying one);
* the **Endorser** (Intel, AMD, AWS, the host's software-TEE key) vouches for
  the attester through endorsements: certificates, CRLs, TCB info, QE
  identities — kept in a :class:`~inclavare.attestation.collateral.CollateralStore`;
* the **Verifier** (:func:`inclavare.attestation.verify`) appraises evidence
  against endorsements and an appraisal policy
  (:class:`~inclavare.attestation.policy.Policy`, which also carries the
  **Reference Value Provider**'s reference values);
* the **Relying Party** (a key broker, an RA-TLS peer) consumes the
  attestation result, :class:`VerifiedClaims`.

Claims are frozen dataclasses. Every TEE's claims expose the same small
vocabulary for policies — ``measurement``, ``signer``, ``svn``,
``product_id``, ``debug``, ``report_data`` — next to the TEE-specific fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Union


class Role(StrEnum):
    """RATS roles (RFC 9334 section 3)."""

    ATTESTER = "attester"
    ENDORSER = "endorser"
    REFERENCE_VALUE_PROVIDER = "reference-value-provider"
    VERIFIER = "verifier"
    RELYING_PARTY = "relying-party"


class Tee(StrEnum):
    SGX = "sgx"
    TDX = "tdx"
    SEV_SNP = "sev-snp"
    NITRO = "aws-nitro"
    SOFTWARE = "software"


class EvidenceKind(StrEnum):
    """Evidence formats this package recognises (see :func:`~inclavare.attestation.detect`)."""

    SGX_QUOTE = "sgx-quote"
    TDX_QUOTE = "tdx-quote"
    SNP_REPORT = "snp-report"
    AZURE_HCL_REPORT = "azure-hcl-report"
    NITRO_DOCUMENT = "nitro-document"
    SOFTWARE = "software-evidence"
    RATLS_CERTIFICATE = "ratls-certificate"


class TcbStatus(StrEnum):
    """Intel TCB statuses (Intel PCS API, TCB info ``tcbStatus``; QVL ``sgx_ql_qv_result_t``)."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    TD_RELAUNCH_ADVISED = "TDRelaunchAdvised"
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED = "TDRelaunchAdvisedConfigurationNeeded"
    REVOKED = "Revoked"


@dataclass(frozen=True)
class Evidence:
    """What an attester conveys: the raw bytes and their detected kind."""

    kind: EvidenceKind
    data: bytes


@dataclass(frozen=True)
class TcbResult:
    """The TCB appraisal. ``status`` is None for TEEs without a vendor TCB status (SNP, Nitro, software)."""

    status: TcbStatus | None
    advisory_ids: tuple[str, ...] = ()
    tcb_date: datetime | None = None
    components: tuple[tuple[str, TcbStatus], ...] = ()  # ("platform"|"qe"|"tdx_module", status)
    evaluation_data_number: int | None = None


@dataclass(frozen=True)
class IntelPlatform:
    """What the PCK certificate says about the platform."""

    fmspc: bytes
    pce_id: bytes
    pce_svn: int
    cpu_svn: bytes
    tcb_components: tuple[int, ...]
    ca: str  # "platform" or "processor"


class _Common:
    """The common claims a TEE does not have are None; each claims class overrides the ones it has."""

    @property
    def signer(self) -> bytes | None:
        return None

    @property
    def svn(self) -> int | None:
        return None

    @property
    def product_id(self) -> int | None:
        return None


@dataclass(frozen=True)
class SgxClaims(_Common):
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    config_id: bytes
    isv_ext_prod_id: bytes
    isv_family_id: bytes
    attributes: bytes
    debug: bool
    mode64: bool
    provision_key: bool
    kss: bool
    misc_select: int
    cpu_svn: bytes
    report_data: bytes
    platform: IntelPlatform

    @property
    def measurement(self) -> bytes:
        return self.mr_enclave

    @property
    def signer(self) -> bytes | None:
        return self.mr_signer

    @property
    def svn(self) -> int | None:
        return self.isv_svn

    @property
    def product_id(self) -> int | None:
        return self.isv_prod_id


@dataclass(frozen=True)
class TdxClaims(_Common):
    mr_td: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    debug: bool
    sept_ve_disable: bool
    perfmon: bool
    xfam: bytes
    tee_tcb_svn: bytes
    report_data: bytes
    platform: IntelPlatform
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None  # TDX 1.5 (quote v5 body type 3) only

    @property
    def measurement(self) -> bytes:
        return self.mr_td


@dataclass(frozen=True)
class SnpTcb:
    """A TCB_VERSION (SEV-SNP ABI spec, "TCB_VERSION"); ``fmc`` exists on Turin and later."""

    raw: bytes
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None


@dataclass(frozen=True)
class SnpPolicy:
    """Guest policy bits (SEV-SNP ABI spec, table "Guest Policy Structure")."""

    raw: int
    abi_minor: int
    abi_major: int
    smt_allowed: bool
    migrate_ma_allowed: bool
    debug_allowed: bool
    single_socket: bool
    cxl_allowed: bool
    mem_aes_256_xts: bool
    rapl_disabled: bool
    ciphertext_hiding: bool
    page_swap_disabled: bool


@dataclass(frozen=True)
class SnpClaims(_Common):
    version: int
    product: str
    signing_key: str  # "VCEK" or "VLEK"
    guest_svn: int
    policy: SnpPolicy
    family_id: bytes
    image_id: bytes
    vmpl: int
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    report_data: bytes
    chip_id: bytes
    platform_info: int
    reported_tcb: SnpTcb
    committed_tcb: SnpTcb
    current_tcb: SnpTcb
    launch_tcb: SnpTcb
    current_version: str
    committed_version: str
    host_runtime_data: bytes | None = None  # Azure HCL runtime data bound by report_data[0:32]

    @property
    def signer(self) -> bytes | None:
        return self.id_key_digest

    @property
    def svn(self) -> int | None:
        return self.guest_svn

    @property
    def debug(self) -> bool:
        return self.policy.debug_allowed


@dataclass(frozen=True)
class NitroClaims(_Common):
    module_id: str
    digest: str
    timestamp: datetime
    pcrs: tuple[tuple[int, bytes], ...]
    user_data: bytes | None
    nonce: bytes | None
    public_key: bytes | None

    def pcr(self, index: int) -> bytes | None:
        return dict(self.pcrs).get(index)

    @property
    def measurement(self) -> bytes:
        return self.pcr(0) or b""

    @property
    def signer(self) -> bytes | None:
        return self.pcr(8)

    @property
    def debug(self) -> bool:
        # AWS: an enclave started in debug mode reports all-zero PCR0, PCR1 and PCR2.
        return all(not any(self.pcr(i) or b"") for i in (0, 1, 2))

    @property
    def report_data(self) -> bytes | None:
        return None


@dataclass(frozen=True)
class SoftwareClaims:
    measurement: bytes
    signer: bytes
    product_id: int
    svn: int
    debug: bool
    report_data: bytes
    host_key_id: bytes
    software: bool = True


TeeClaims = Union[SgxClaims, TdxClaims, SnpClaims, NitroClaims, SoftwareClaims]  # noqa: UP007


@dataclass(frozen=True)
class VerifiedClaims:
    """The attestation result: returned only after every check of the evidence passed.

    ``expired_collateral`` lists collateral that was past its nextUpdate at
    ``verified_at``; it is non-empty only when the policy explicitly accepts
    expired collateral. ``bound_key`` is the DER SubjectPublicKeyInfo the
    evidence binds through its report data (RA-TLS certificates).
    """

    kind: EvidenceKind
    tee: Tee
    claims: TeeClaims
    tcb: TcbResult
    verified_at: datetime
    expired_collateral: tuple[str, ...] = ()
    bound_key: bytes | None = None
    inner_kind: EvidenceKind | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: bytes as lower-case hex, times as RFC 3339 UTC."""
        out = jsonable(self)
        assert isinstance(out, dict)
        claims = out["claims"]
        assert isinstance(claims, dict)
        for name in ("measurement", "signer", "svn", "product_id", "debug", "report_data"):
            claims.setdefault(name, jsonable(getattr(self.claims, name)))
        return out


def jsonable(value: object) -> object:
    """Dataclasses, enums, bytes, datetimes and tuples to JSON-compatible values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return (
            value.strftime("%Y-%m-%dT%H:%M:%S")
            + (f".{value.microsecond // 1000:03d}" if value.microsecond else "")
            + "Z"
        )
    if isinstance(value, tuple | list):
        if value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str | int) for v in value):
            return {str(k): jsonable(v) for k, v in value}
        return [jsonable(v) for v in value]
    return value
