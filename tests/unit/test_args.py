import pytest

from inclavare.cli.rune._args import Flag, parse
from inclavare.errors import UsageError

FLAGS = [Flag("bundle, b", "str", "."), Flag("detach, d"), Flag("preserve-fds", "int", 0), Flag("env, e", "list")]


def test_go_flag_forms():
    opts, rest = parse(["-b", "x", "--detach", "--preserve-fds=2", "-e", "A=1", "--env=B=2", "id", "-d"], FLAGS)
    assert opts == {"bundle": "x", "detach": True, "preserve_fds": 2, "env": ["A=1", "B=2"]}
    assert rest == ["id", "-d"]  # parsing stops at the first positional, as Go's flag does


def test_double_dash_ends_flags():
    _opts, rest = parse(["--", "-d"], FLAGS)
    assert rest == ["-d"]


def test_bool_with_value():
    assert parse(["--detach=false"], FLAGS)[0]["detach"] is False


@pytest.mark.parametrize("argv", [["--nope"], ["--bundle"], ["--preserve-fds", "x"], ["--detach=maybe"]])
def test_usage_errors(argv):
    with pytest.raises(UsageError):
        parse(argv, FLAGS)


def test_uint_flag_refuses_negative_values():
    flags = [Flag("preserve-fds", "uint", 0), Flag("cpu-quota", "int", None)]
    assert parse(["--cpu-quota", "-1"], flags)[0]["cpu_quota"] == -1
    with pytest.raises(UsageError, match="invalid value '-1' for flag -preserve-fds"):
        parse(["--preserve-fds", "-1"], flags)
    with pytest.raises(UsageError, match="parse error"):
        parse(["--cpu-quota=x"], flags)
