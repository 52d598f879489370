"""Rego policies (regopy): attestation appraisal and path-scoped resource authorization.

- :mod:`.engine`       compile/check modules, evaluate with per-thread caching
- :mod:`.attestation`  verified claims + reference values -> AR4SI trust vector
- :mod:`.resource`     one policy per subtree (``*``, ``repo/*``, ``repo/type/*``, exact); default deny
- :mod:`.builtin`      the default policies and named shortcuts
"""

from __future__ import annotations

from .attestation import appraise, policy_input
from .builtin import ATTESTATION_POLICIES, DEFAULT_ATTESTATION_POLICY, RESOURCE_POLICIES
from .engine import PolicyEngine, PolicyEvaluationError, check_module
from .resource import Decision, authorize, check_path, governed_by_builtin, governing_scope

__all__ = [
    "ATTESTATION_POLICIES",
    "DEFAULT_ATTESTATION_POLICY",
    "RESOURCE_POLICIES",
    "Decision",
    "PolicyEngine",
    "PolicyEvaluationError",
    "appraise",
    "authorize",
    "check_module",
    "check_path",
    "governed_by_builtin",
    "governing_scope",
    "policy_input",
]
