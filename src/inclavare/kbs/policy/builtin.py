"""Built-in Rego policies: the defaults and named shortcuts (trustee PR #779 has the same idea).

Attestation policies turn the verified claims (input, see
:func:`.attestation.policy_input`) and the live reference values
(``data.reference``: name -> list of strings, expired ones already removed)
into AR4SI trust claims (draft-ietf-rats-ar4si §2.3). The values and their
meanings follow trustee's default CPU policy:

    executables     3  approved executables loaded
                   33  unrecognized executables (warning)
    hardware        2  genuine, up-to-date hardware
                   32  genuine but out of date (warning)
                   97  unrecognized (contraindicated)
    configuration   2  approved configuration
                   36  unavailable (warning)
                   96  debug: unsafe (contraindicated)

Reference value names are ``<tee>.<claim>``: ``software.measurement``,
``sgx.signer``, ``sgx.min_svn``, ``tdx.measurement``, ``sev-snp.measurement``...
Software evidence (no hardware protection) is unrecognized hardware (97,
contraindicated) under ``default``; ``allow-software`` calls it 32 (warning),
so it can never be *affirming*: a resource policy has to accept it knowingly.

Resource policies answer ``data.policy.allow`` over the token's EAR claims
(input) and the request (``data["resource-path"]`` = ``"repo/type/tag"``).
"""

from __future__ import annotations

_ATTESTATION_HEAD = """\
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

ref(name) := object.get(data.reference, concat(".", [input.tee, name]), [])

svn_ok if {
	every minimum in ref("min_svn") {
		input.svn >= to_number(minimum)
	}
}

product_ok if count(ref("product_id")) == 0

product_ok if sprintf("%d", [input.product_id]) in ref("product_id")

executables := 3 if {
	input.measurement in ref("measurement")
	svn_ok
}

executables := 3 if {
	input.signer in ref("signer")
	product_ok
	svn_ok
}

hardware := 2 if {
	input.tee != "software"
	input.tcb_status in {null, "UpToDate"}
}

hardware := 32 if {
	input.tee != "software"
	not input.tcb_status in {null, "UpToDate"}
}

configuration := 2 if not input.debug

configuration := 96 if input.debug
"""

ATTESTATION_POLICIES: dict[str, str] = {
    "default": _ATTESTATION_HEAD,
    "allow-software": _ATTESTATION_HEAD
    + """
# Software evidence verified under a trusted host key: genuine software, but no hardware protection.
hardware := 32 if input.tee == "software"
""",
}

_RESOURCE_HEAD = """\
package policy

import rego.v1

default allow := false
"""

_EAR = 'input.submods.cpu0["ear.status"]'
_VECTOR = 'input.submods.cpu0["ear.trustworthiness-vector"]'

RESOURCE_POLICIES: dict[str, str] = {
    "deny-all": _RESOURCE_HEAD,
    "allow-all": _RESOURCE_HEAD + "\nallow := true\n",
    "affirming": _RESOURCE_HEAD + f'\nallow if {_EAR} == "affirming"\n',
    "approved-executables": _RESOURCE_HEAD
    + f"""
allow if {{
	{_EAR} != "contraindicated"
	{_VECTOR}.executables >= 2
	{_VECTOR}.executables <= 31
}}
""",
}

DEFAULT_ATTESTATION_POLICY = "default"
