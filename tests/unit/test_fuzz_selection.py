"""Fuzz what decides whether a container is an enclave: hostile annotations, env and node config.

Whatever a bundle or a node configuration holds, the readers answer with a
value or with one of the project's errors (one line) — never another
exception, and never "plain container" for a bundle that carries an enclave
setting.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inclavare.enclave.config import SOURCES, enclave_config, read_settings
from inclavare.enclave.errors import EnclaveConfigError
from inclavare.errors import SpecError
from inclavare.runtime import nodeconfig

NAMES = [a for _v, a in SOURCES.values() if a] + [v for v, _a in SOURCES.values() if v]
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=24), st.sampled_from(NAMES).map(lambda k: k.swapcase()),
                 st.sampled_from(NAMES).map(lambda k: k.replace(".", "-")))  # fmt: skip
values = st.one_of(st.sampled_from(["software", "intelSgx", "wasm", "native", "debug", ""]), st.text(max_size=16))


@settings(max_examples=2000, deadline=None)
@given(st.dictionaries(keys, values, max_size=6), st.lists(st.tuples(keys, values).map("=".join), max_size=6))
def test_settings_readers_answer_or_refuse_in_one_line(annotations, env):
    try:
        found = read_settings(annotations, env)
        config = enclave_config(found)
    except EnclaveConfigError as exc:
        error = str(exc)
    else:
        error = ""
    assert "\n" not in error
    if error:
        return
    if config is None:
        # a plain container: nothing that rune would read as an enclave setting is there
        # (an empty ENCLAVE_* value is unset; a plain container's env is left as it is)
        assert not found.found


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_node_configuration_parses_or_is_one_located_line(data):
    try:
        nodeconfig.parse(data, "/etc/inclavare/rune.toml")
    except SpecError as exc:
        error = str(exc)
    else:
        return
    assert error.startswith("/etc/inclavare/rune.toml: ")
    assert "\n" not in error
