"""Rego evaluation through regopy (rego-cpp), with compiled interpreters cached per thread.

Policies are Rego modules in ``package policy`` (as trustee's); the
built-in ones run as Python (:mod:`.compiled`) where their input is
plain, which decides the same without the interpreter. rego-cpp
re-plans a module on every ``query`` (2-4 ms for the attestation policy),
but a *bundle* built once for a query runs in about 0.4 ms, so each worker
thread keeps a few (interpreter, bundle) pairs keyed by (module, data,
query) and only swaps the input. regopy interpreters are not shared between
threads.

A module that does not parse is refused when it is uploaded
(:func:`check_module` -> 400); an evaluation that fails at request time
raises :class:`PolicyEvaluationError`, which callers turn into a refusal
(never into an allow).

rego-cpp has no evaluation budget, and a policy can be made slow on purpose
(a rule that only runs with a real ``input``). So evaluations run in
*lanes* — one per repository for resource policies — each with
``LANE_SLOTS`` concurrent evaluations; a request finding its lane full is
answered 503 at once instead of waiting on a worker thread. A tenant's slow
policy then delays only that tenant's requests.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping

import regopy

from ..errors import KbsError, PolicyBusy, PolicyInvalid
from .compiled import UNSURE, compiled

CACHE_PER_THREAD = 16
LANE_SLOTS = 4
MAX_POLICY = 256 << 10


class PolicyEvaluationError(KbsError):
    """A policy failed while being evaluated (a policy bug, logged; outwardly a refusal)."""


def _interpreter() -> regopy.Interpreter:
    rego = regopy.Interpreter()
    rego.log_level = regopy.LogLevel.NONE  # rego-cpp prints parse errors to stdout otherwise
    return rego


def check_module(text: str, name: str = "policy") -> None:
    """Refuse a module that is too large, does not compile, or is not ``package policy``."""
    if len(text.encode()) > MAX_POLICY:
        raise PolicyInvalid(f"{name}: larger than {MAX_POLICY >> 10} KiB")
    rego = _interpreter()
    try:
        rego.add_module(name, text)
        output = rego.query("data.policy")
    except (regopy.RegoError, ValueError) as exc:  # regopy: ValueError when an error comes back as "ok"
        first = str(exc).strip().splitlines()
        raise PolicyInvalid(f"{name}: does not compile ({first[0][:120] if first else 'rego error'})") from None
    if not output.ok():
        raise PolicyInvalid(f"{name}: does not evaluate ({str(output).splitlines()[0][:120]})")
    if not _package_policy(text):
        raise PolicyInvalid(f"{name}: must be `package policy`")


def _package_policy(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            return stripped == "package policy"
    return False


class PolicyEngine:
    """Evaluates ``query`` over a module with ``input`` and ``data``; thread-safe.

    The built-in modules are evaluated by their Python form (:mod:`.compiled`)
    unless ``compiled=False``; they take no lane slot: their cost is fixed
    and small, which is what the lanes exist to guarantee.
    """

    def __init__(self, lane_slots: int = LANE_SLOTS, *, compiled: bool = True) -> None:
        self._local = threading.local()
        self._python = compiled
        self._slots = lane_slots
        self._lanes: dict[str, threading.BoundedSemaphore] = {}
        self._lanes_lock = threading.Lock()

    def evaluate(
        self, module: str, query: str, input: Mapping[str, object], data: Mapping[str, object], lane: str | None = None
    ) -> object:
        """``lane``: whose slots the evaluation takes (None: the operator's own
        policies, e.g. the attestation policy, which are not limited)."""
        fast = compiled(module, query) if self._python else None
        if fast is not None:
            result = fast(input, data)
            if result is not UNSURE:
                return result
        if lane is None:
            return self._evaluate(module, query, input, data)
        with self._lanes_lock:
            slots = self._lanes.setdefault(lane, threading.BoundedSemaphore(self._slots))
        if not slots.acquire(blocking=False):
            raise PolicyBusy(f"all {self._slots} policy evaluation slots of {lane!r} are in use")
        try:
            return self._evaluate(module, query, input, data)
        finally:
            slots.release()

    def _evaluate(self, module: str, query: str, input: Mapping[str, object], data: Mapping[str, object]) -> object:
        rego, bundle = self._compiled(module, query, data)
        try:
            rego.set_input(regopy.Input(dict(input)))
            output = rego.query_bundle(bundle)
        except (regopy.RegoError, ValueError) as exc:  # regopy: ValueError when an error comes back as "ok"
            raise PolicyEvaluationError(f"policy evaluation failed: {str(exc).strip()[:200]}") from None
        if not output.ok():
            raise PolicyEvaluationError(f"policy evaluation failed: {str(output).strip()[:200]}")
        if len(output) == 0 or not output[0].expressions:
            return None  # undefined
        return output[0].expressions[0]

    def _compiled(
        self, module: str, query: str, data: Mapping[str, object]
    ) -> tuple[regopy.Interpreter, regopy.Bundle]:
        cache: OrderedDict[str, tuple[regopy.Interpreter, regopy.Bundle]] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = OrderedDict()
        blob = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(b"\0".join((module.encode(), query.encode(), blob.encode()))).hexdigest()
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
        rego = _interpreter()
        try:
            rego.add_module("policy", module)
            rego.add_data_json(blob)
            bundle = rego.build(query, [])
        except regopy.RegoError as exc:
            raise PolicyEvaluationError(f"policy does not compile: {str(exc).strip()[:200]}") from None
        if not bundle.ok():
            raise PolicyEvaluationError("policy does not compile")
        cache[key] = (rego, bundle)
        if len(cache) > CACHE_PER_THREAD:
            cache.popitem(last=False)
        return rego, bundle
