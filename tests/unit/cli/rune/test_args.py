"""rune's Go-flag parser (cli/rune/_args.py) and the typed flags of every command."""

from __future__ import annotations

import importlib
import typing

import pytest

from inclavare.cli.rune import _args
from inclavare.cli.rune._args import Flag, parse
from inclavare.cli.rune._main import COMMANDS, GlobalFlags
from inclavare.errors import UsageError


class Sample(_args.Flags):
    FLAGS = (Flag("bundle, b", "str", "."), Flag("detach, d"), Flag("preserve-fds", "int", 0), Flag("env, e", "list"))
    __slots__ = ("bundle", "detach", "env", "preserve_fds")
    bundle: str
    detach: bool
    preserve_fds: int
    env: list[str]


def test_go_flag_forms():
    opts, rest = parse(["-b", "x", "--detach", "--preserve-fds=2", "-e", "A=1", "--env=B=2", "id", "-d"], Sample)
    assert (opts.bundle, opts.detach, opts.preserve_fds, opts.env, opts.help) == ("x", True, 2, ["A=1", "B=2"], False)
    assert rest == ["id", "-d"]  # parsing stops at the first positional, as Go's flag does


def test_defaults_and_a_fresh_list_per_parse():
    first, _ = parse([], Sample)
    assert (first.bundle, first.detach, first.preserve_fds, first.env) == (".", False, 0, [])
    first.env.append("X=1")
    assert parse([], Sample)[0].env == []


def test_double_dash_ends_flags():
    _opts, rest = parse(["--", "-d"], Sample)
    assert rest == ["-d"]


def test_bool_with_value():
    assert parse(["--detach=false"], Sample)[0].detach is False


def test_help_is_every_commands_flag():
    assert parse(["-h"], Sample)[0].help is True


@pytest.mark.parametrize("argv", [["--nope"], ["--bundle"], ["--preserve-fds", "x"], ["--detach=maybe"]])
def test_usage_errors(argv):
    with pytest.raises(UsageError):
        parse(argv, Sample)


def test_uint_flag_refuses_negative_values():
    class Numbers(_args.Flags):
        FLAGS = (Flag("preserve-fds", "uint", 0), Flag("cpu-quota", "int", None))
        __slots__ = ("cpu_quota", "preserve_fds")

    assert parse(["--cpu-quota", "-1"], Numbers)[0].cpu_quota == -1
    with pytest.raises(UsageError, match="invalid value '-1' for flag -preserve-fds"):
        parse(["--preserve-fds", "-1"], Numbers)
    with pytest.raises(UsageError, match="parse error"):
        parse(["--cpu-quota=x"], Numbers)


# What each kind of flag holds, by its default: the attribute's declared type must say so.
def _expected(flag: Flag) -> object:
    if flag.kind == "list":
        return list[str]
    base = bool if flag.kind == "bool" else str if flag.kind == "str" else int
    return base | None if flag.default is None else base


KINDS = [GlobalFlags] + [
    importlib.import_module(f"inclavare.cli.rune.{m}").Flags for m in sorted(set(COMMANDS.values()))
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.__module__}.{k.__name__}")
def test_every_flag_is_a_typed_slot(kind):
    """A command's flags class declares exactly its table's flags, each with
    the type the parser stores: a flag added to FLAGS without its slot (or
    typed wrongly) fails here, not in front of a user."""
    slots = {name for cls in kind.__mro__ for name in getattr(cls, "__slots__", ())}
    hints = typing.get_type_hints(kind)
    flags = _args.table(kind)
    assert slots == {f.dest for f in flags}
    for f in flags:
        assert hints[f.dest] == _expected(f), f.dest
    opts, _ = parse([], kind)
    for f in flags:
        value = getattr(opts, f.dest)
        assert value == f.default
