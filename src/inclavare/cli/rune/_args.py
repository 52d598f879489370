"""Command-line parsing with runc's (urfave/cli v1, Go `flag`) rules.

* a flag is ``-name`` or ``--name``, its value ``=value`` or the next word;
* boolean flags take no value unless written ``--flag=false``;
* parsing stops at the first non-flag word or at ``--``: the rest is
  positional (``rune exec ID sh -c ...`` keeps ``-c`` for sh).

Hand-written instead of argparse, whose import alone costs about 12 ms —
more than a third of runc's whole `run` (docs/architecture.md, start-up).
"""

from __future__ import annotations

from ...errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    F = TypeVar("F", bound="Flags")


class Flag:
    __slots__ = ("default", "dest", "help", "kind", "names")

    def __init__(self, names: str, kind: str = "bool", default: object = None, help: str = "") -> None:
        self.names = tuple(n.strip() for n in names.split(","))
        self.kind = kind  # "bool" | "str" | "int" | "uint" | "list"
        self.default = ([] if kind == "list" else False if kind == "bool" else None) if default is None else default
        self.help = help
        self.dest = self.names[0].replace("-", "_")


class Flags:
    """The parsed flags of a command: a subclass lists its flags in FLAGS and
    declares one typed slot per flag, named by the flag's ``dest``
    (tests/unit/test_args.py checks that the two agree)."""

    FLAGS: tuple[Flag, ...] = ()
    __slots__ = ("help",)
    help: bool


HELP = Flag("help, h", help="show help")


def table(kind: type[Flags]) -> tuple[Flag, ...]:
    """Every flag `kind` takes, --help last."""
    return (*kind.FLAGS, HELP)


def parse(argv: list[str], kind: type[F]) -> tuple[F, list[str]]:
    """Parse leading flags of `argv` into a new `kind`; return it and the positional rest."""
    flags = table(kind)
    by_name = {name: f for f in flags for name in f.names}
    values = kind()
    for f in flags:
        setattr(values, f.dest, list(f.default) if isinstance(f.default, list) else f.default)
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return values, argv[i + 1 :]
        if not word.startswith("-") or word == "-":
            break
        name, eq, inline = word.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.kind == "bool":
            setattr(values, flag.dest, _bool(name, inline) if eq else True)
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                inline = argv[i]
            _store(values, flag, name, inline)
        i += 1
    return values, argv[i:]


def _bool(name: str, text: str) -> bool:
    if text.lower() in ("1", "t", "true"):
        return True
    if text.lower() in ("0", "f", "false"):
        return False
    raise UsageError(f"invalid boolean value {text!r} for -{name}")


def _int(name: str, text: str, signed: bool) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or (value < 0 and not signed):  # Go's flag.Uint rejects "-1" the same way
        raise UsageError(f"invalid value {text!r} for flag -{name}: parse error")
    return value


def _store(values: Flags, flag: Flag, name: str, text: str) -> None:
    if flag.kind in ("int", "uint"):
        setattr(values, flag.dest, _int(name, text, signed=flag.kind == "int"))
    elif flag.kind == "list":
        getattr(values, flag.dest).append(text)
    else:
        setattr(values, flag.dest, text)


def usage(command: str, synopsis: str, flags: tuple[Flag, ...]) -> str:
    lines = [f"USAGE:\n   rune {command} {synopsis}\n", "OPTIONS:"]
    for f in flags:
        names = ", ".join(("--" if len(n) > 1 else "-") + n + ("" if f.kind == "bool" else " value") for n in f.names)
        lines.append(f"   {names:<32} {f.help}")
    return "\n".join(lines) + "\n"
