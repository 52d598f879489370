"""The appraisal policy: reference values and what to accept, applied after verification.

A policy never makes evidence *more* trusted: verification (signatures,
chains, collateral, TCB) must already have passed. It then decides whether
the relying party accepts what was verified.

File format (JSON object or TOML table; every key optional, unknown keys
are an error)::

    accept_tcb_status = ["UpToDate", "SWHardeningNeeded"]  # Intel TCB statuses; "Revoked" is never accepted
    allow_debug = false                # debug enclaves/TDs/SNP guests with debug policy/Nitro debug mode
    allow_software = false             # software (no hardware protection) evidence
    accept_expired_collateral = false  # TCB info/QE identity/CRL past nextUpdate (Intel "collateral expired")
    tees = ["sgx", "tdx", "sev-snp", "aws-nitro", "software"]   # which TEEs at all (default: any)
    measurements = ["<hex>", ...]      # MRENCLAVE | MRTD | SNP MEASUREMENT | Nitro PCR0 | software measurement
                                       # (every <hex> may carry a 0x prefix, as dcap-qvl prints it)
    signers = ["<hex>", ...]           # MRSIGNER | SNP ID key digest | Nitro PCR8 | software signer
    min_svn = 0                        # ISVSVN | SNP guest SVN | software SVN
    product_ids = [0]                  # ISVPRODID | software product id
    report_data = "<hex>"              # expected REPORT_DATA, zero-extended to the evidence's size

``Policy()`` is strict (UpToDate only, no debug, no software).
:meth:`Policy.genuine_only` accepts any genuine hardware evidence and is what
``inclavare evidence verify`` uses without ``--policy``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from .claims import TcbStatus, Tee, VerifiedClaims
from .errors import CollateralExpired, PolicyFileError, PolicyRejected
from .hazmat.guard import contained
from .hazmat.hextext import from_hex

_E = TypeVar("_E", bound=Enum)
_ALL_BUT_REVOKED = frozenset(s for s in TcbStatus if s != TcbStatus.REVOKED)


@dataclass(frozen=True)
class Policy:
    accept_tcb_status: frozenset[TcbStatus] = frozenset({TcbStatus.UP_TO_DATE})
    allow_debug: bool = False
    allow_software: bool = False
    accept_expired_collateral: bool = False
    tees: frozenset[Tee] = frozenset()
    measurements: frozenset[bytes] = frozenset()
    signers: frozenset[bytes] = frozenset()
    min_svn: int | None = None
    product_ids: frozenset[int] = frozenset()
    report_data: bytes | None = None
    name: str = field(default="policy", compare=False)

    def __post_init__(self) -> None:
        if TcbStatus.REVOKED in self.accept_tcb_status:
            raise PolicyFileError(f"{self.name}: accept_tcb_status: Revoked can never be accepted")
        if self.report_data is not None and len(self.report_data) > 64:
            raise PolicyFileError(f"{self.name}: report_data: longer than 64 bytes")

    @classmethod
    def genuine_only(cls) -> Policy:
        """Accept any genuine hardware evidence: every TCB status but Revoked, debug allowed, no software."""
        return cls(accept_tcb_status=_ALL_BUT_REVOKED, allow_debug=True, name="genuine-only")

    @classmethod
    def load(cls, path: str) -> Policy:
        """Read a JSON (``.json``) or TOML (anything else) policy file."""
        try:
            with open(path, "rb") as f:
                raw = f.read(1 << 20)
        except OSError as exc:
            raise PolicyFileError(f"{path}: {exc.strerror or exc}") from None
        with contained(path, PolicyFileError, "malformed policy file"):
            doc = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode("utf-8"))
        if not isinstance(doc, Mapping):
            raise PolicyFileError(f"{path}: a policy must be a JSON object or TOML table")
        return cls.from_mapping(doc, path)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, object], name: str = "policy") -> Policy:
        with contained(name, PolicyFileError):
            policy = cls._from_mapping(doc, name)
        return policy

    @classmethod
    def _from_mapping(cls, doc: Mapping[str, object], name: str) -> Policy:
        unknown = set(doc) - _FIELDS
        if unknown:
            raise PolicyFileError(f"{name}: unknown key {sorted(unknown)[0]!r}")
        p = _Parser(doc, name)
        return cls(
            accept_tcb_status=p.statuses(),
            allow_debug=p.boolean("allow_debug"),
            allow_software=p.boolean("allow_software"),
            accept_expired_collateral=p.boolean("accept_expired_collateral"),
            tees=frozenset(p.enum_list("tees", Tee)),
            measurements=p.hex_set("measurements"),
            signers=p.hex_set("signers"),
            min_svn=p.integer("min_svn"),
            product_ids=frozenset(p.int_list("product_ids")),
            report_data=p.hex_value("report_data"),
            name=name,
        )

    def check(self, result: VerifiedClaims) -> None:
        """Raise PolicyRejected naming the first policy field the verified claims do not satisfy.

        Expired collateral (Intel's "collateral expiration status") raises
        CollateralExpired, a VerificationFailed, unless accept_expired_collateral.
        """
        claims = result.claims
        if self.tees and result.tee not in self.tees:
            raise PolicyRejected("tees", f"{result.tee.value} evidence is not accepted")
        if result.tee == Tee.SOFTWARE and not self.allow_software:
            raise PolicyRejected("allow_software", "software evidence is not accepted by this policy")
        if result.expired_collateral and not self.accept_expired_collateral:
            raise CollateralExpired(
                f"{result.tee.value} collateral",
                "expired at the verification instant: " + "; ".join(result.expired_collateral),
            )
        status = result.tcb.status
        if status is not None and status not in self.accept_tcb_status:
            raise PolicyRejected("accept_tcb_status", f"TCB status {status.value} is not accepted")
        if claims.debug and not self.allow_debug:
            raise PolicyRejected("allow_debug", f"the {result.tee.value} evidence is from a debug TEE")
        self._reference_values(result)

    def _reference_values(self, result: VerifiedClaims) -> None:
        claims = result.claims
        tee = result.tee.value
        if self.measurements and claims.measurement not in self.measurements:
            raise PolicyRejected(
                "measurements", f"{tee} measurement {claims.measurement.hex()} is not a reference value"
            )
        if self.signers and claims.signer not in self.signers:
            shown = claims.signer.hex() if claims.signer is not None else "(none)"
            raise PolicyRejected("signers", f"{tee} signer {shown} is not a reference value")
        if self.min_svn is not None and (claims.svn is None or claims.svn < self.min_svn):
            raise PolicyRejected("min_svn", f"{tee} SVN {claims.svn} is below {self.min_svn}")
        if self.product_ids and claims.product_id not in self.product_ids:
            raise PolicyRejected("product_ids", f"{tee} product id {claims.product_id} is not accepted")
        if self.report_data is not None:
            actual = claims.report_data
            if actual is None:
                raise PolicyRejected("report_data", f"{tee} evidence carries no report data")
            if actual != self.report_data + bytes(len(actual) - len(self.report_data)):
                raise PolicyRejected("report_data", f"{tee} REPORT_DATA is not the expected value")


_FIELDS = {
    "accept_tcb_status",
    "allow_debug",
    "allow_software",
    "accept_expired_collateral",
    "tees",
    "measurements",
    "signers",
    "min_svn",
    "product_ids",
    "report_data",
}


class _Parser:
    def __init__(self, doc: Mapping[str, object], name: str) -> None:
        self.doc = doc
        self.name = name

    def fail(self, key: str, reason: str) -> PolicyFileError:
        return PolicyFileError(f"{self.name}: {key}: {reason}")

    def boolean(self, key: str) -> bool:
        value = self.doc.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def integer(self, key: str) -> int | None:
        value = self.doc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise self.fail(key, "must be a non-negative integer")
        return value

    def _list(self, key: str) -> list[object]:
        value = self.doc.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, "must be a list")
        return value

    def int_list(self, key: str) -> list[int]:
        out: list[int] = []
        for item in self._list(key):
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise self.fail(key, "must be a list of non-negative integers")
            out.append(item)
        return out

    def statuses(self) -> frozenset[TcbStatus]:
        if "accept_tcb_status" not in self.doc:
            return frozenset({TcbStatus.UP_TO_DATE})
        return frozenset(self.enum_list("accept_tcb_status", TcbStatus))

    def enum_list(self, key: str, enum: type[_E]) -> list[_E]:
        out: list[_E] = []
        for item in self._list(key):
            match = next((e for e in enum if e.value == item), None)
            if match is None:
                raise self.fail(key, f"{item!r} is not one of {', '.join(e.value for e in enum)}")
            out.append(match)
        return out

    def hex_value(self, key: str) -> bytes | None:
        value = self.doc.get(key)
        if value is None:
            return None
        try:
            if isinstance(value, str):
                return from_hex(value)
        except ValueError:
            pass
        raise self.fail(key, "must be a hex string")

    def hex_set(self, key: str) -> frozenset[bytes]:
        out = set()
        for item in self._list(key):
            try:
                if not isinstance(item, str):
                    raise ValueError(item)
                out.add(from_hex(item))
            except ValueError:
                raise self.fail(key, "must be a list of hex strings") from None
        return frozenset(out)
