"""Resource policies, one per subtree of the resource namespace; default deny.

Resources live at ``<repository>/<type>/<tag>`` (kbs_attestation_protocol.md,
"Secret Resource"). A resource policy is stored under a *scope*: ``*`` (all),
``repo/*``, ``repo/type/*`` or one exact path. For a request, the most
specific scope that covers the path decides alone — an exact path beats
``repo/type/*``, which beats ``repo/*``, which beats ``*`` — so the admin who
owns ``tenant-a/*`` decides for ``tenant-a`` without touching ``default/*``
(trustee#1112). No covering policy, or anything but ``allow == true``,
means deny.

The policy sees the token's EAR claims as ``input`` (trustee's resource
policy input) and the request as ``data``: ``{"plugin": "resource",
"resource-path": "repo/type/tag", "resource-segments": [...], "scope": ...}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..admin import GLOBAL, covers
from ..errors import InvalidRequestPath
from .compiled import compiled
from .engine import PolicyEngine

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def check_path(repository: str, type_: str, tag: str) -> str:
    """``repo/type/tag`` if every segment is a plain name, else InvalidRequestPath (404, as trustee)."""
    for segment in (repository, type_, tag):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidRequestPath(f"resource path segment {segment[:40]!r} is not a plain name")
    return f"{repository}/{type_}/{tag}"


def specificity(scope: str) -> int:
    """Exact paths first, then longer subtrees; ``*`` last."""
    if scope == GLOBAL:
        return 0
    if scope.endswith("/*"):
        return len(scope)
    return 1 << 16


def governing_scope(scopes: list[str], path: str) -> str | None:
    matching = [s for s in scopes if covers(s, path)]
    return max(matching, key=specificity) if matching else None


@dataclass(frozen=True)
class Decision:
    allow: bool
    scope: str | None  # the policy that decided; None when no policy covers the path


def authorize(engine: PolicyEngine, policies: Mapping[str, str], path: str, claims: Mapping[str, object]) -> Decision:
    """Evaluate the governing policy for ``path`` over the token ``claims``."""
    scope = governing_scope(list(policies), path)
    if scope is None:
        return Decision(False, None)
    data = {"plugin": "resource", "resource-path": path, "resource-segments": path.split("/"), "scope": scope}
    lane = path.split("/", 1)[0]  # one tenant's policies cannot hold the slots of another's
    return Decision(engine.evaluate(policies[scope], "data.policy.allow", claims, data, lane) is True, scope)


def governed_by_builtin(policies: Mapping[str, str], path: str) -> bool:
    """True if no policy or a built-in one governs ``path``: decided in Python (:mod:`.compiled`),
    at a fixed cost, where a tenant's own Rego module may take as long as it likes."""
    scope = governing_scope(list(policies), path)
    return scope is None or compiled(policies[scope], "data.policy.allow") is not None
