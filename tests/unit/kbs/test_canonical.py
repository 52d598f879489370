"""RFC 8785 canonical JSON: the bytes both sides hash for the report-data binding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inclavare.kbs.protocol.canonical import CanonicalJsonError, canonical_json


def test_members_sorted_without_whitespace():
    doc = {"tee-pubkey": {"y": "b", "x": "a", "kty": "EC"}, "nonce": "n", "additional-evidence": ""}
    assert canonical_json(doc) == b'{"additional-evidence":"","nonce":"n","tee-pubkey":{"kty":"EC","x":"a","y":"b"}}'


def test_sorting_is_by_utf16_code_units():
    # RFC 8785 §3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16, after it by code point.
    doc = {"\ufb33": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(doc) == '{"a":3,"\U0001f600":2,"\ufb33":1}'.encode()


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ('"', '"\\""'),
        ("\\", '"\\\\"'),
        ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
        ("\x00\x1f", '"\\u0000\\u001f"'),
        ("\x7f/é€", '"\x7f/é€"'),  # no escaping of DEL, solidus or non-ASCII
    ],
)
def test_string_escapes_follow_ecmascript(text, encoded):
    assert canonical_json(text) == encoded.encode()


@pytest.mark.parametrize("value", [1.5, 2**53, -(2**53), b"bytes", {1: "x"}, object(), "\ud800"])
def test_values_without_one_canonical_form_are_refused(value):
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


def test_literals_and_arrays():
    assert canonical_json([None, True, False, 0, -(2**53 - 1), []]) == b"[null,true,false,0,-9007199254740991,[]]"


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53 - 1), 2**53 - 1)
    | st.text(st.characters(blacklist_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_round_trips_and_is_deterministic(value):
    data = canonical_json(value)
    assert json.loads(data) == value
    assert canonical_json(json.loads(data)) == data


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_strings_escape_as_json_does_with_or_without_anything_to_escape(text):
    # Python's json escapes exactly what ECMAScript's JSON.stringify does ('"', '\\', controls), the rest raw
    assert canonical_json(text) == json.dumps(text, ensure_ascii=False).encode("utf-8")
