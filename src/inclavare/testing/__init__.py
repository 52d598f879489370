"""Public test kit: bundles and helpers used by inclavare's own tests and
usable by third parties testing against rune (like ``trio.testing``)."""
