"""inclavare: confidential containers.

Importing this package must stay cheap: `rune` imports it on every start-up,
and rune's start-up time is measured against runc's (docs/architecture.md).
"""

__version__ = "0.1.0"
# The OCI runtime-spec version rune implements and writes into `rune spec`.
OCI_VERSION = "1.0.2-dev"
