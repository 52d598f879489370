"""Spec parsing and validation: every bad input is one located SpecError."""

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inclavare.errors import SpecError
from inclavare.spec.load import parse_spec
from inclavare.spec.template import example
from inclavare.spec.validate import validate


@pytest.fixture
def good(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path, example()


def check(tmp_path, doc):
    spec = parse_spec(json.dumps(doc))
    validate(spec, str(tmp_path))
    return spec


def test_template_is_valid(good):
    spec = check(*good)
    assert spec.process.args == ["sh"]
    assert spec.linux.namespaces[0].type == "pid"
    assert spec.mounts[1].options[0] == "nosuid"
    assert spec.process.user.uid == 0


def test_unknown_members_are_kept_and_ignored(good):
    tmp, doc = good
    doc["vendorThing"] = {"x": 1}
    doc["process"]["futureField"] = True
    assert check(tmp, doc).raw["vendorThing"] == {"x": 1}


def mutate(doc, path, value):
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


BAD = [
    (("process", "args"), "sh", "process.args: must be an array"),
    (("process", "args"), [], "process.args: must be a non-empty array"),
    (("process", "user", "uid"), "0", "process.user.uid: must be an integer"),
    (("process", "user", "uid"), True, "process.user.uid: must be an integer, not a boolean"),
    (("process", "user"), KeyError, "process.user: is required"),
    (("process", "cwd"), "relative", "process.cwd: must be an absolute path"),
    (("process", "env"), ["NOEQUALS"], "process.env[0]"),
    (("process", "capabilities", "bounding"), ["CAP_TEST"], "unknown capability 'CAP_TEST'"),
    (("process", "rlimits"), [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}], "process.rlimits[0].type"),
    (("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}], "exceeds hard limit"),
    (("root", "path"), "nope", "root.path: rootfs"),
    (("ociVersion",), "2.0.0", "ociVersion: unsupported version"),
    (("mounts",), [{"destination": "rel", "type": "tmpfs"}], "mounts[0].destination"),
    (("linux", "namespaces"), [{"type": "bogus"}], "linux.namespaces[0].type: unknown namespace type"),
    (("linux", "namespaces"), [{"type": "pid"}, {"type": "pid"}], "duplicate namespace"),
    (("linux", "namespaces"), [{"type": "user"}, {"type": "mount"}], "needs uid and gid mappings"),
    (("linux", "sysctl"), {"kernel.panic": "1"}, "not namespaced"),
    (("linux", "sysctl"), {"net.ipv4.ip_forward": "1"}, None),  # network ns present: fine
    (("linux", "devices"), [{"type": "x", "path": "/dev/x"}], "invalid device type"),
    (("linux", "rootfsPropagation"), "sideways", "linux.rootfsPropagation"),
    (("hooks",), {"prestart": [{"path": "relative"}]}, "hooks.prestart[0].path"),
    (("hostname",), 5, "hostname: must be a string"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD)
def test_bad_input_is_located(good, path, value, message):
    tmp, doc = good
    doc = mutate(doc, path, value)
    if message is None:
        check(tmp, doc)
        return
    with pytest.raises(SpecError) as info:
        check(tmp, doc)
    assert message in str(info.value)
    assert str(info.value).startswith("config.json: ")
    assert "\n" not in str(info.value)


def test_malformed_json_names_position(tmp_path):
    with pytest.raises(SpecError, match=r"config.json: malformed JSON: .* line 1 column 2"):
        parse_spec("{")


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["process", "args", "user", "uid", "linux", "mounts", "root", "path",
                                         "namespaces", "type", "ociVersion", "hooks", "env", "cwd"]), c, max_size=5),
                    max_leaves=25))  # fmt: skip
def test_fuzz_parser_raises_only_spec_errors(doc):
    try:
        parse_spec(json.dumps(doc))
    except SpecError:
        pass
