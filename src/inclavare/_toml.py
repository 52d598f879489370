"""A reader for the part of TOML that rune's configuration uses.

Why not ``tomllib``: importing it pulls in ``re``, ``typing``, ``datetime``
and ``string`` — about 14 ms of a process's start-up on the reference
machine, a quarter of runc's whole `run` — and `rune create` reads
/etc/inclavare/rune.toml for every container. The subset read here is what
an operator writes in such a file (TOML v1.0.0, https://toml.io/en/v1.0.0):

* comments, ``[table]`` and ``[dotted.table]`` headers, ``key = value`` with
  bare or dotted bare keys;
* basic strings (with TOML's escapes) and literal strings, ``true`` and
  ``false``, decimal integers (``_`` between digits), and arrays of these,
  over several lines, with a trailing comma.

Everything else TOML has (inline tables, floats, dates, quoted keys,
multi-line strings, arrays of tables) is refused with the line it is on,
never guessed at: a configuration that means something other than what rune
reads must not load. The tests compare this reader with ``tomllib`` on
generated documents.
"""

from __future__ import annotations

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class TomlError(ValueError):
    """Malformed or unsupported TOML; ``lineno`` is 1-based."""

    def __init__(self, lineno: int, msg: str) -> None:
        self.lineno = lineno
        self.msg = msg
        super().__init__(f"line {lineno}: {msg}")


def loads(text: str) -> dict[str, object]:
    return _Reader(text).document()


class _Reader:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.root: dict[str, object] = {}
        self.defined: set[tuple[str, ...]] = set()  # tables given a [header]
        self.dotted: set[tuple[str, ...]] = set()  # tables made by dotted keys (a.b = 1)
        self.current: tuple[str, ...] = ()  # the table of the latest header

    def fail(self, msg: str) -> TomlError:
        return TomlError(self.s.count("\n", 0, self.i) + 1, msg)

    def document(self) -> dict[str, object]:
        table = self.root
        while True:
            self.skip_blank_lines()
            if self.i >= len(self.s):
                return self.root
            if self.s[self.i] == "[":
                table = self.header()
            else:
                self.pair(table)
            self.end_of_line()

    # -- lines -------------------------------------------------------------
    def skip_blank_lines(self) -> None:
        while self.i < len(self.s):
            self.skip_spaces()
            if self.i < len(self.s) and self.s[self.i] == "#":
                self.skip_comment()
            if self.i < len(self.s) and self.s[self.i] in "\r\n":
                self.newline()
                continue
            return

    def skip_spaces(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def skip_comment(self) -> None:
        end = self.s.find("\n", self.i)
        end = len(self.s) if end < 0 else end
        text = self.s[self.i : end].removesuffix("\r")
        if any((c < " " and c != "\t") or c == "\x7f" for c in text):
            raise self.fail("control characters are not allowed in comments")
        self.i += len(text)

    def newline(self) -> None:
        if self.s.startswith("\r\n", self.i):
            self.i += 2
        elif self.s[self.i] == "\n":
            self.i += 1
        else:
            raise self.fail("a carriage return must be followed by a newline")

    def end_of_line(self) -> None:
        self.skip_spaces()
        if self.i < len(self.s) and self.s[self.i] == "#":
            self.skip_comment()
        if self.i < len(self.s):
            if self.s[self.i] not in "\r\n":
                raise self.fail(f"unexpected {self.s[self.i]!r} after the value")
            self.newline()

    def header(self) -> dict[str, object]:
        if self.s.startswith("[[", self.i):
            raise self.fail("arrays of tables are not supported in this file")
        self.i += 1
        path = self.key()
        if self.i >= len(self.s) or self.s[self.i] != "]":
            raise self.fail("a table header must end with ']'")
        self.i += 1
        # TOML v1.0.0, "Table": a table is defined once, by a header or by
        # dotted keys, never both.
        if path in self.defined or path in self.dotted:
            raise self.fail(f"table [{'.'.join(path)}] is defined twice")
        self.defined.add(path)
        self.current = path
        return self.table(self.root, path)

    def pair(self, table: dict[str, object]) -> None:
        path = self.key()
        if self.i >= len(self.s) or self.s[self.i] != "=":
            raise self.fail("expected '=' after the key")
        self.i += 1
        self.skip_spaces()
        for n in range(1, len(path)):
            prefix = self.current + path[:n]
            if prefix in self.defined:
                raise self.fail(f"table [{'.'.join(prefix)}] is defined twice")
            self.dotted.add(prefix)
        target = self.table(table, path[:-1])
        if path[-1] in target:
            raise self.fail(f"key {'.'.join(path)} is defined twice")
        target[path[-1]] = self.value()

    def key(self) -> tuple[str, ...]:
        parts = []
        while True:
            self.skip_spaces()
            start = self.i
            while self.i < len(self.s) and self.s[self.i] in _BARE:
                self.i += 1
            if start == self.i:
                what = repr(self.s[self.i]) if self.i < len(self.s) else "end of file"
                raise self.fail(f"expected a bare key, found {what} (quoted keys are not supported)")
            parts.append(self.s[start : self.i])
            self.skip_spaces()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return tuple(parts)

    def table(self, table: dict[str, object], path: tuple[str, ...]) -> dict[str, object]:
        for name in path:
            child = table.setdefault(name, {})
            if not isinstance(child, dict):
                raise self.fail(f"{name} is a value, not a table")
            table = child
        return table

    # -- values ------------------------------------------------------------
    def value(self) -> object:
        if self.i >= len(self.s):
            raise self.fail("expected a value")
        ch = self.s[self.i]
        if ch == '"':
            return self.basic_string()
        if ch == "'":
            return self.literal_string()
        if ch == "[":
            return self.array()
        for word, value in (("true", True), ("false", False)):
            if self.s.startswith(word, self.i):
                self.i += len(word)
                return value
        return self.integer()

    def basic_string(self) -> str:
        if self.s.startswith('"""', self.i):
            raise self.fail("multi-line strings are not supported in this file")
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(self.s) or self.s[self.i] in "\r\n":
                raise self.fail("unterminated string")
            ch = self.s[self.i]
            self.i += 1
            if ch == '"':
                return "".join(out)
            if ch == "\\":
                out.append(self.escape())
            elif (ch < " " and ch != "\t") or ch == "\x7f":
                raise self.fail("control characters must be escaped in strings")
            else:
                out.append(ch)

    def escape(self) -> str:
        ch = self.s[self.i : self.i + 1]
        self.i += 1
        if ch in _ESCAPES:
            return _ESCAPES[ch]
        width = {"u": 4, "U": 8}.get(ch)
        digits = self.s[self.i : self.i + width] if width else ""
        if not width or len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise self.fail(f"invalid escape \\{ch}")
        self.i += width
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise self.fail(f"\\{ch}{digits} is not a Unicode scalar value")
        return chr(code)

    def literal_string(self) -> str:
        if self.s.startswith("'''", self.i):
            raise self.fail("multi-line strings are not supported in this file")
        end = self.i + 1
        while end < len(self.s) and self.s[end] != "'":
            if self.s[end] in "\r\n" or (self.s[end] < " " and self.s[end] != "\t") or self.s[end] == "\x7f":
                raise self.fail("unterminated or invalid literal string")
            end += 1
        if end >= len(self.s):
            raise self.fail("unterminated string")
        text = self.s[self.i + 1 : end]
        self.i = end + 1
        return text

    def integer(self) -> int:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] in "+-0123456789_":
            self.i += 1
        text = self.s[start : self.i]
        digits = text.lstrip("+-")
        valid = (
            digits
            and len(text) - len(digits) <= 1
            and all(d in "0123456789_" for d in digits)
            and digits[0] != "_" and digits[-1] != "_" and "__" not in digits
            and (digits == "0" or digits[0] != "0")
        )  # fmt: skip
        if not valid or (self.i < len(self.s) and self.s[self.i] not in " \t\r\n#,]"):
            raise self.fail("expected a string, true, false, an integer or an array")
        return int(text.replace("_", ""))

    def array(self) -> list[object]:
        self.i += 1
        items: list[object] = []
        while True:
            self.skip_array_space()
            if self.i < len(self.s) and self.s[self.i] == "]":
                self.i += 1
                return items
            items.append(self.value())
            self.skip_array_space()
            if self.i < len(self.s) and self.s[self.i] == ",":
                self.i += 1
            elif self.i >= len(self.s) or self.s[self.i] != "]":
                raise self.fail("expected ',' or ']' in the array")

    def skip_array_space(self) -> None:
        while self.i < len(self.s):
            self.skip_spaces()
            if self.i < len(self.s) and self.s[self.i] == "#":
                self.skip_comment()
            if self.i < len(self.s) and self.s[self.i] in "\r\n":
                self.newline()
            else:
                return
