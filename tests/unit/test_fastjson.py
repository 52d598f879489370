import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inclavare import _fastjson

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_roundtrip_matches_stdlib(value):
    text = _fastjson.dumps(value)
    assert json.loads(text) == value
    assert _fastjson.loads(text) == value
    assert json.loads(_fastjson.dumps_pretty(value)) == value


@given(st.text())
def test_garbage_raises_only_jsonerror(text):
    try:
        _fastjson.loads(text)
    except _fastjson.JSONError:
        pass


@pytest.mark.parametrize(
    ("doc", "where"), [("{", "line 1 column 2"), ('{"a": 1,\n x}', "line 2 column 2"), ("[1] 2", "extra data")]
)
def test_errors_are_located(doc, where):
    with pytest.raises(_fastjson.JSONError, match=where):
        _fastjson.loads(doc)


def test_nan_refused():
    with pytest.raises(_fastjson.JSONError):
        _fastjson.loads("[NaN]")


def test_pretty_matches_go_marshalindent_shape():
    assert _fastjson.dumps_pretty({"a": [1], "b": {}}) == '{\n  "a": [\n    1\n  ],\n  "b": {}\n}'
