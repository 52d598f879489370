"""Rego policies through regopy: the built-ins, path-scoped resource policies, refusals on errors."""

from __future__ import annotations

import threading
import time

import pytest

from inclavare.kbs.errors import InvalidRequestPath, PolicyBusy, PolicyInvalid
from inclavare.kbs.policy import (
    ATTESTATION_POLICIES,
    RESOURCE_POLICIES,
    PolicyEngine,
    PolicyEvaluationError,
    authorize,
    check_module,
    check_path,
    governing_scope,
)
from inclavare.kbs.protocol.ear import status

M, S = "ab" * 32, "cd" * 32
SOFTWARE = {
    "tee": "software",
    "measurement": M,
    "signer": S,
    "svn": 3,
    "product_id": 7,
    "debug": False,
    "tcb_status": None,
}
SGX = {**SOFTWARE, "tee": "sgx"}


# Every built-in decision through both engines: the Python form of the built-ins and regopy.
ENGINES = pytest.mark.parametrize("engine", [PolicyEngine(), PolicyEngine(compiled=False)], ids=["python", "rego"])


def vector(
    policy: str, inp: dict[str, object], reference: dict[str, list[str]], engine: PolicyEngine
) -> dict[str, object]:
    out = engine.evaluate(ATTESTATION_POLICIES[policy], "data.policy", inp, {"reference": reference})
    assert isinstance(out, dict)
    return {k: out[k] for k in ("executables", "hardware", "configuration")}


@pytest.mark.parametrize(
    ("policy", "inp", "reference", "expected", "tier"),
    [
        ("default", SOFTWARE, {"software.measurement": [M]}, (3, 97, 2), "contraindicated"),  # software: no hardware
        ("allow-software", SOFTWARE, {"software.measurement": [M]}, (3, 32, 2), "warning"),
        ("allow-software", SOFTWARE, {}, (33, 32, 2), "warning"),  # unrecognized executables
        ("allow-software", SOFTWARE, {"software.measurement": [M], "software.min_svn": ["4"]}, (33, 32, 2), "warning"),
        ("allow-software", SOFTWARE, {"software.signer": [S], "software.product_id": ["7"], "software.min_svn": ["3"]},
         (3, 32, 2), "warning"),
        ("allow-software", SOFTWARE, {"software.signer": [S], "software.product_id": ["8"]}, (33, 32, 2), "warning"),
        ("allow-software", {**SOFTWARE, "debug": True}, {"software.measurement": [M]}, (3, 32, 96), "contraindicated"),
        ("default", {**SGX, "tcb_status": "UpToDate"}, {"sgx.measurement": [M]}, (3, 2, 2), "affirming"),
        ("default", {**SGX, "tcb_status": "OutOfDate"}, {"sgx.measurement": [M]}, (3, 32, 2), "warning"),
        ("default", {**SGX, "tcb_status": "UpToDate"}, {"software.measurement": [M]}, (33, 2, 2), "warning"),
        ("default", {**SOFTWARE, "tee": "sev-snp"}, {"sev-snp.measurement": [M]}, (3, 2, 2), "affirming"),
    ],
)  # fmt: skip
@ENGINES
def test_builtin_attestation_policies(policy, inp, reference, expected, tier, engine):
    v = vector(policy, inp, reference, engine)
    assert (v["executables"], v["hardware"], v["configuration"]) == expected
    assert status({k: int(x) for k, x in v.items()}).value == tier  # type: ignore[call-overload]


def ear(status_: str, executables: int) -> dict[str, object]:
    return {"submods": {"cpu0": {"ear.status": status_, "ear.trustworthiness-vector": {"executables": executables}}}}


@pytest.mark.parametrize(
    ("name", "claims", "allow"),
    [
        ("deny-all", ear("affirming", 3), False),
        ("allow-all", ear("contraindicated", 99), True),
        ("affirming", ear("affirming", 3), True),
        ("affirming", ear("warning", 3), False),
        ("approved-executables", ear("warning", 3), True),
        ("approved-executables", ear("warning", 33), False),
        ("approved-executables", ear("contraindicated", 3), False),
    ],
)
@ENGINES
def test_builtin_resource_policies(name, claims, allow, engine):
    assert authorize(engine, {"*": RESOURCE_POLICIES[name]}, "a/b/c", claims).allow is allow


def test_the_most_specific_scope_decides():
    scopes = ["*", "tenant-a/*", "tenant-a/keys/*", "tenant-a/keys/k1"]
    assert governing_scope(scopes, "tenant-a/keys/k1") == "tenant-a/keys/k1"
    assert governing_scope(scopes, "tenant-a/keys/k2") == "tenant-a/keys/*"
    assert governing_scope(scopes, "tenant-a/certs/c") == "tenant-a/*"
    assert governing_scope(scopes, "default/keys/k") == "*"
    assert governing_scope(["tenant-a/*"], "default/keys/k") is None
    policies = {"*": RESOURCE_POLICIES["allow-all"], "tenant-a/*": RESOURCE_POLICIES["deny-all"]}
    engine = PolicyEngine()
    assert authorize(engine, policies, "default/k/v", ear("none", 0)).allow
    denied = authorize(engine, policies, "tenant-a/k/v", ear("none", 0))
    assert (denied.allow, denied.scope) == (False, "tenant-a/*")


def test_default_deny_without_any_policy():
    decision = authorize(PolicyEngine(), {}, "a/b/c", ear("affirming", 3))
    assert (decision.allow, decision.scope) == (False, None)


def test_the_request_is_in_data():
    text = (
        'package policy\nimport rego.v1\ndefault allow := false\nallow if data["resource-path"] == "t/key/1"\n'
        'allow if data["resource-segments"][2] == "2"\n'
    )
    engine = PolicyEngine()
    assert authorize(engine, {"t/*": text}, "t/key/1", {}).allow
    assert authorize(engine, {"t/*": text}, "t/key/2", {}).allow
    assert not authorize(engine, {"t/*": text}, "t/key/3", {}).allow


def test_only_a_true_allow_allows():
    engine = PolicyEngine()
    for value in ('"yes"', "1", "{}", "[true]"):
        text = f"package policy\nallow := {value}\n"
        assert not authorize(engine, {"*": text}, "a/b/c", {}).allow


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("package policy\nallow if {", "does not compile"),
        ("package other\nallow := true\n", "must be `package policy`"),
        ("# comment\npackage policy\n" + "x := 1\n" * 40000, "larger than"),
    ],
)
def test_bad_modules_are_refused(text, message):
    with pytest.raises(PolicyInvalid, match=message):
        check_module(text)


def test_evaluation_errors_raise():
    conflict = "package policy\nimport rego.v1\nallow := true if input.a\nallow := false if input.a\n"
    with pytest.raises(PolicyEvaluationError):
        authorize(PolicyEngine(), {"*": conflict}, "a/b/c", {"a": True})


def test_engine_is_usable_from_threads():
    engine = PolicyEngine()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(20):
                assert authorize(engine, {"*": RESOURCE_POLICIES["affirming"]}, "a/b/c", ear("affirming", i)).allow
                assert not authorize(engine, {"*": RESOURCE_POLICIES["affirming"]}, "a/b/c", ear("warning", i)).allow
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


SLOW = """package policy
import rego.v1
default allow := false
allow if {
  input.slow
  count([1 | some i in numbers.range(1, 700); some j in numbers.range(1, 700)]) < 0
}
"""
FAST = "package policy\nimport rego.v1\nallow := true\n"


def test_a_slow_tenant_policy_holds_only_its_own_lane():
    """rego-cpp has no time budget: a policy slow on purpose must not take the
    worker threads of other tenants. Its repository's lane fills, and further
    requests there are answered PolicyBusy (503) at once."""
    engine = PolicyEngine(lane_slots=2)
    slow = {"tenant-a/*": SLOW, "tenant-b/*": FAST}
    workers = [threading.Thread(target=authorize, args=(engine, slow, "tenant-a/k/x", {"slow": True}))
               for _ in range(2)]  # fmt: skip
    for w in workers:
        w.start()
    busy = _until_busy(engine, time.monotonic() + 5)  # both slow evaluations hold their slots
    assert "all 2 policy evaluation slots of 'tenant-a'" in str(busy)
    started = time.monotonic()
    assert authorize(engine, slow, "tenant-b/k/x", {}).allow
    assert time.monotonic() - started < 0.5
    for w in workers:
        w.join()
    assert authorize(engine, {"tenant-a/*": FAST}, "tenant-a/k/y", {}).allow  # slots given back


def _until_busy(engine: PolicyEngine, deadline: float) -> PolicyBusy:
    while time.monotonic() < deadline:
        try:
            authorize(engine, {"tenant-a/*": FAST}, "tenant-a/k/y", {})
        except PolicyBusy as exc:
            return exc
        time.sleep(0.005)
    raise AssertionError("the lane never filled")


@pytest.mark.parametrize(
    "segments",
    [("..", "b", "c"), ("a", "", "c"), ("a", "b", "c/d"), ("a", "b", "-x"), ("a", "b", "x" * 129), ("a\n", "b", "c")],
)
def test_resource_paths(segments):
    with pytest.raises(InvalidRequestPath):
        check_path(*segments)
    assert check_path("default", "key", "db.v2_1-x") == "default/key/db.v2_1-x"
