"""The built-in policies (:mod:`.builtin`) compiled to Python: their Rego's decisions, without the interpreter.

Every attestation evaluates the attestation policy and every GET a
resource policy; through regopy that is ~0.3 ms each (converting the
input into rego-cpp's terms costs more than the query). For the module
texts this broker ships — the ones nearly every deployment runs — the
rules are small enough to state again in Python, and :class:`.engine.PolicyEngine`
uses these functions when the module *is* one of those texts (compared
whole, so an edited copy goes to Rego).

Only inputs whose Rego meaning is plain are decided here: strings where
the policy compares strings, integers where it compares numbers (and
``min_svn`` reference values that are plain decimal integers), a boolean
``debug``. Anything else — a null ``svn`` compared with a number, a
``to_number`` of a non-number, a float — returns :data:`UNSURE` and the
module is evaluated by regopy as before, so the two cannot disagree on
the inputs where Rego's cross-type ordering or built-in errors would
decide. tests/unit/kbs/test_policy.py runs the built-in policy tests
through both engines, and a property test compares them on generated
inputs.

Resource policies decide over the EAR claims (trustee's input); a path
that does not exist in the claims is Rego's *undefined*, which the
built-ins' ``default allow := false`` turns into a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .builtin import ATTESTATION_POLICIES, RESOURCE_POLICIES

UNSURE = object()  # "evaluate the module with regopy": this input is outside the plain cases
Evaluator = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
# Without leading zeros: rego-cpp's to_number leaves "007" and "00" undefined yet reads "-01",
# so any such reference value is left to regopy, whatever it decides (hypothesis found "007").
_PLAIN_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_REFERENCES = ("measurement", "signer", "min_svn", "product_id")
_MISSING = object()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _attestation(allow_software: bool) -> Evaluator:
    """``data.policy`` of the ``default`` (or ``allow-software``) attestation policy."""

    def evaluate(inp: Mapping[str, Any], data: Mapping[str, Any]) -> Any:
        tee, reference = inp.get("tee"), data.get("reference")
        if not isinstance(tee, str) or not isinstance(reference, Mapping):
            return UNSURE
        ref = {name: reference.get(f"{tee}.{name}", []) for name in _REFERENCES}
        if not all(_strings(values) for values in ref.values()):
            return UNSURE
        svn: Any = inp.get("svn")
        product, debug = inp.get("product_id"), inp.get("debug", _MISSING)
        measurement, signer, tcb = inp.get("measurement"), inp.get("signer"), inp.get("tcb_status", _MISSING)
        if ref["min_svn"] and (not _is_int(svn) or not all(_PLAIN_INT.match(m) for m in ref["min_svn"])):
            return UNSURE
        if ref["product_id"] and not _is_int(product):
            return UNSURE
        if not isinstance(debug, bool) or not (tcb is None or isinstance(tcb, str)):
            return UNSURE
        if not all(v is None or isinstance(v, str) for v in (measurement, signer)):
            return UNSURE
        out: dict[str, Any] = {}
        svn_ok = all(svn >= int(m) for m in ref["min_svn"])  # every minimum in ref("min_svn")
        product_ok = not ref["product_id"] or str(product) in ref["product_id"]  # sprintf("%d", ...) in ref
        if svn_ok:
            out["svn_ok"] = True
        if product_ok:
            out["product_ok"] = True
        known = measurement in ref["measurement"] or (signer in ref["signer"] and product_ok)
        out["executables"] = 3 if known and svn_ok else 33
        if tee != "software":
            out["hardware"] = 2 if tcb in (None, "UpToDate") else 32
        else:
            out["hardware"] = 32 if allow_software else 97
        out["configuration"] = 96 if debug else 2
        return out

    return evaluate


def _ear(inp: Mapping[str, Any], *path: str) -> Any:
    node: Any = inp
    for key in ("submods", "cpu0", *path):
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _affirming(inp: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    return _ear(inp, "ear.status") == "affirming"


def _approved_executables(inp: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    status = _ear(inp, "ear.status")
    executables = _ear(inp, "ear.trustworthiness-vector", "executables")
    # Rego orders values of different types (null < bool < number < string ...): only a number lies in 2..31.
    number = isinstance(executables, int | float) and not isinstance(executables, bool)
    return status is not _MISSING and status != "contraindicated" and number and 2 <= executables <= 31


COMPILED: dict[tuple[str, str], Evaluator] = {
    (ATTESTATION_POLICIES["default"], "data.policy"): _attestation(allow_software=False),
    (ATTESTATION_POLICIES["allow-software"], "data.policy"): _attestation(allow_software=True),
    (RESOURCE_POLICIES["deny-all"], "data.policy.allow"): lambda inp, data: False,
    (RESOURCE_POLICIES["allow-all"], "data.policy.allow"): lambda inp, data: True,
    (RESOURCE_POLICIES["affirming"], "data.policy.allow"): _affirming,
    (RESOURCE_POLICIES["approved-executables"], "data.policy.allow"): _approved_executables,
}


def compiled(module: str, query: str) -> Evaluator | None:
    """The Python form of ``module`` for ``query``, if it is a built-in's exact text."""
    return COMPILED.get((module, query))
