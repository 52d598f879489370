"""linux.seccomp: system call filtering (config-linux.md#seccomp).

Placeholder until the libseccomp-backed implementation lands: a config that
asks for a filter is refused rather than run unfiltered, because silently
dropping a requested isolation layer is never acceptable.
"""

from __future__ import annotations

from ..errors import SpecError


def compile_filter(section: object) -> object:
    raise SpecError("linux.seccomp", "seccomp filters are not supported by this build of rune yet")
