"""inclavare._toml against the standard library's tomllib: same answers on the subset, refusals outside it."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inclavare import _toml
from inclavare._toml import TomlError

bare_keys = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-", min_size=1, max_size=8)
scalars = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))


def basic(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render(value: object, style: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(value)
        return text if style % 3 else (f"+{text}" if value >= 0 else text)
    if isinstance(value, str):
        literal = "'" not in value and all((c >= " " and c != "\x7f") or c == "\t" for c in value)
        return f"'{value}'" if literal and style % 2 else basic(value)
    assert isinstance(value, list)
    sep = ",\n  # a comment\n  " if style % 2 else ", "
    items = sep.join(render(v, style) for v in value)
    return f"[{items}{',' if style % 4 == 1 and value else ''}]"


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = ["# generated"]
    used_tables: set[str] = set()
    for table in draw(st.lists(bare_keys, max_size=3, unique=True)):
        if table in used_tables:
            continue
        used_tables.add(table)
        lines.append(f"[{table}]  # header")
        for key, value in draw(st.dictionaries(bare_keys, values, max_size=4)).items():
            lines.append(f"{key} = {render(value, draw(st.integers(0, 11)))}")
        lines.append("")
    return "\n".join(lines) + "\n"


@settings(max_examples=400, deadline=None)
@given(documents())
def test_the_subset_reads_as_tomllib_reads_it(text):
    assert _toml.loads(text) == tomllib.loads(text)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_anything_else_is_refused_or_read_as_tomllib_reads_it(text):
    """Whatever the input: a TomlError, or the very answer tomllib gives (never a different one)."""
    try:
        ours = _toml.loads(text)
    except TomlError:
        return
    assert ours == tomllib.loads(text)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a = 1.5\n", 1, "expected a string, true, false, an integer or an array"),
        ("[a]\nb = {c = 1}\n", 2, "expected a string"),
        ('"quoted" = 1\n', 1, "quoted keys are not supported"),
        ("[[t]]\n", 1, "arrays of tables are not supported"),
        ('a = """x"""\n', 1, "multi-line strings are not supported"),
        ("a = 2020-01-01\n", 1, "expected a string"),
        ("a = 1\na = 2\n", 2, "key a is defined twice"),
        ("[a]\n[a]\n", 2, "table [a] is defined twice"),
        ("a.b = 1\n[a]\n", 2, "table [a] is defined twice"),
        ("[x]\na = 'unterminated\n", 2, "unterminated"),
        ('a = "\\q"\n', 1, "invalid escape \\q"),
        ("a = 01\n", 1, "expected a string"),
        ("a = 1 2\n", 1, "unexpected '2' after the value"),
    ],
)
def test_refusals_name_the_line(text, line, message):
    with pytest.raises(TomlError) as err:
        _toml.loads(text)
    assert err.value.lineno == line
    assert message in err.value.msg
