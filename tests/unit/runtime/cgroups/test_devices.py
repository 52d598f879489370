"""Device rules: validation, the v1 write order, and the v2 eBPF program's decisions.

The program is run here by a small interpreter of the instructions it uses
and compared with the rule semantics written out in Python; that the kernel
verifier accepts it and enforces it is tested in
tests/integration/test_cgroups_manager.py on a real cgroup2 directory.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inclavare.errors import SpecError
from inclavare.runtime.cgroups import devices, ebpf

MASK64 = 2**64 - 1


def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret a device program for one request (BPF_DEVCG_DEV_*, BPF_DEVCG_ACC_* bits)."""
    ctx = ((access << 16) | dev_type, major, minor)
    regs = [0] * 11
    pc = 0
    while True:
        insn = program[pc * 8 : pc * 8 + 8]
        code, dst, src = insn[0], insn[1] & 0xF, insn[1] >> 4
        off = int.from_bytes(insn[2:4], "little", signed=True)
        imm = int.from_bytes(insn[4:8], "little", signed=True) & MASK64  # sign-extended, as the kernel does
        if code == ebpf.LDX_MEM_W:
            assert src == 1
            assert off in (0, 4, 8)
            regs[dst] = ctx[off // 4]
        elif code == ebpf.ALU32_AND_K:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == ebpf.ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == ebpf.ALU64_MOV_K:
            regs[dst] = imm
        elif code == ebpf.JMP_JA:
            pc += off
        elif code == ebpf.JMP_JNE_K:
            pc += off if regs[dst] != imm else 0
        elif code == ebpf.JMP_JSET_K:
            pc += off if regs[dst] & imm else 0
        elif code == ebpf.JMP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")
        pc += 1


def check_structure(program: bytes) -> None:
    """What the verifier's check_cfg insists on: jumps forward and in range,
    every instruction reachable, no fall-through off the end."""
    n = len(program) // 8
    reachable, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in reachable:
            continue
        assert 0 <= pc < n
        reachable.add(pc)
        code = program[pc * 8]
        off = int.from_bytes(program[pc * 8 + 2 : pc * 8 + 4], "little", signed=True)
        if code == ebpf.JMP_EXIT:
            continue
        if code in (ebpf.JMP_JA, ebpf.JMP_JNE_K, ebpf.JMP_JSET_K):
            assert off >= 0
            todo.append(pc + 1 + off)
        if code != ebpf.JMP_JA:
            todo.append(pc + 1)
    assert reachable == set(range(n))


def reference(rules, kind, access, major, minor) -> int:
    """Each requested bit: the last rule matching device and bit decides; none: denied."""
    for letter, bit in ebpf.ACCESS_BITS:
        if not access & bit:
            continue
        verdict = False
        for allow, rtype, rmajor, rminor, raccess in rules:
            if letter in raccess and rtype in ("a", kind) and rmajor in (None, major) and rminor in (None, minor):
                verdict = allow
        if not verdict:
            return 0
    return 1


rule_st = st.tuples(
    st.booleans(),
    st.sampled_from("abc"),
    st.sampled_from([None, 1, 5]),
    st.sampled_from([None, 0, 3]),
    st.sets(st.sampled_from("rwm"), min_size=1).map(lambda s: "".join(c for c in "rwm" if c in s)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(rule_st, max_size=8),
    st.sampled_from("bc"),
    st.integers(1, 7),
    st.sampled_from([1, 5, 9]),
    st.sampled_from([0, 3, 7]),
)
def test_program_decides_like_the_rules(rules, kind, access, major, minor):
    rules = [
        devices.DENY_ALL,
        *[(a, t, None if t == "a" else ma, None if t == "a" else mi, acc) for a, t, ma, mi, acc in rules],
    ]
    program = ebpf.device_program(rules)
    check_structure(program)
    dev_type = ebpf.DEV_BLOCK if kind == "b" else ebpf.DEV_CHAR
    assert run(program, dev_type, access, major, minor) == reference(rules, kind, access, major, minor)


def test_default_list_allows_the_standard_nodes_only():
    program = ebpf.device_program(devices.effective([], [("c", 10, 229)]))
    check_structure(program)
    rw = 2 | 4
    assert run(program, ebpf.DEV_CHAR, rw, 1, 3) == 1  # /dev/null
    assert run(program, ebpf.DEV_CHAR, rw, 136, 42) == 1  # a pty slave
    assert run(program, ebpf.DEV_CHAR, rw, 10, 229) == 1  # linux.devices: /dev/fuse
    assert run(program, ebpf.DEV_BLOCK, 1, 8, 0) == 1  # mknod of anything
    assert run(program, ebpf.DEV_BLOCK, 2, 8, 0) == 0  # but no reading a disk
    assert run(program, ebpf.DEV_CHAR, 2, 4, 0) == 0  # nor /dev/tty0


def test_partial_deny_blocks_read_write_opens():
    """crun matches a rule only when it covers all requested bits, so a later
    "deny w" does not stop O_RDWR; deciding per bit does."""
    rules = [devices.DENY_ALL, (True, "c", 42, 0, "rwm"), (False, "c", 42, 0, "w")]
    program = ebpf.device_program(rules)
    assert run(program, ebpf.DEV_CHAR, 2, 42, 0) == 1
    assert run(program, ebpf.DEV_CHAR, 2 | 4, 42, 0) == 0
    assert run(program, ebpf.DEV_CHAR, 4, 42, 0) == 0


def test_allow_all_program_has_no_deny_block():
    program = ebpf.device_program([devices.DENY_ALL, (True, "a", None, None, "rwm")])
    check_structure(program)  # a dead deny block would be rejected by the verifier
    assert run(program, ebpf.DEV_BLOCK, 7, 8, 0) == 1


def test_spec_rules_validation():
    res = {"devices": [{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "wr"},
                       {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "r"}]}  # fmt: skip
    assert devices.spec_rules(res) == [
        (False, "a", None, None, "rwm"),
        (True, "c", 10, 229, "rw"),
        (True, "b", 8, None, "r"),
    ]
    bad = [
        ({"type": "c"}, "linux.resources.devices[0].allow"),
        ({"allow": True, "type": "u"}, "linux.resources.devices[0].type"),
        ({"allow": True, "access": "rx"}, "linux.resources.devices[0].access"),
        ({"allow": True, "type": "c", "major": -5}, "linux.resources.devices[0].major"),
        ({"allow": True, "type": "c", "minor": "1"}, "linux.resources.devices[0].minor"),
    ]
    for rule, field in bad:
        with pytest.raises(SpecError) as e:
            devices.spec_rules({"devices": [rule]})
        assert e.value.field == field


def test_v1_lines_keep_the_spec_order_first():
    spec = devices.spec_rules({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
        {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"},
    ]})  # fmt: skip
    lines = [line for rule in devices.effective(spec, [("u", 4, 64)]) for line in devices.v1_lines(rule)]
    assert lines[:5] == [
        ("devices.deny", "a"),  # rune's own start from nothing
        ("devices.deny", "a"),
        ("devices.allow", "c 10:229 rwm"),
        ("devices.allow", "b 8:20 rw"),
        ("devices.allow", "b 10:200 r"),
    ]
    assert lines[5:7] == [("devices.allow", "c *:* m"), ("devices.allow", "b *:* m")]
    assert lines[-1] == ("devices.allow", "c 4:64 rwm")  # linux.devices entry ("u" is a char device)
    # An "a" rule for less than rwm cannot be written as "a" (the kernel would read "everything").
    assert devices.v1_lines((False, "a", None, None, "w")) == [("devices.deny", "c *:* w"), ("devices.deny", "b *:* w")]


def test_same_rules_ignores_leading_deny_all_only():
    """containerd's default list (deny everything) equals no rules; anything
    else that changes the allowlist does not."""
    deny = {"allow": False, "access": "rwm"}
    tun = {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"}

    def rules(*items):
        return devices.spec_rules({"devices": list(items)})

    assert devices.same_rules(rules(deny), rules())
    assert devices.same_rules(rules(deny, tun), rules(tun))
    assert devices.same_rules(rules({"allow": False, "type": "a"}, tun), rules(deny, deny, tun))
    assert not devices.same_rules(rules(deny, tun), rules(deny))
    assert not devices.same_rules(rules(tun, deny), rules(tun))  # a deny-all after a rule revokes it
    assert not devices.same_rules(rules({**tun, "access": "r"}), rules(tun))
