"""cgroup files to the Metrics the CRI plugin reads (a fake cgroup tree: only the files matter)."""

from __future__ import annotations

from inclavare.shim import cgstats, pb
from inclavare.shim.cgroups import Cgroup


def fake(tmp_path, v2: bool, files: dict[str, str]) -> Cgroup:
    cg = Cgroup.__new__(Cgroup)
    cg.v2 = v2
    cg.paths = {}
    for rel, text in files.items():
        controller, _, name = rel.partition("/")
        d = tmp_path / controller
        d.mkdir(exist_ok=True)
        (d / name).write_text(text)
        cg.paths[controller] = str(d)
    return cg


def test_v1_metrics(tmp_path):
    cg = fake(tmp_path, False, {
        "cpuacct/cpuacct.usage": "123456789\n", "cpuacct/cpuacct.usage_percpu": "100 200 \n",
        "cpuacct/cpuacct.stat": "user 5\nsystem 7\n",
        "cpu/cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n",
        "memory/memory.stat": "cache 4096\nrss 8192\npgpgin 11\ntotal_inactive_file 1024\nhierarchical_memsw_limit 9\n",
        "memory/memory.usage_in_bytes": "65536\n", "memory/memory.limit_in_bytes": "9223372036854771712\n",
        "memory/memory.max_usage_in_bytes": "70000\n", "memory/memory.failcnt": "0\n",
        "memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        "pids/pids.current": "4\n", "pids/pids.max": "max\n",
    })  # fmt: skip
    type_url, value = cg.stats()
    assert type_url == "io.containerd.cgroups.v1.Metrics"
    m = pb.cg1.Metrics.FromString(value)
    assert (m.cpu.usage.total, list(m.cpu.usage.per_cpu)) == (123456789, [100, 200])
    tick = cgstats._NS
    assert (m.cpu.usage.user, m.cpu.usage.kernel) == (5 * tick, 7 * tick)
    assert (m.cpu.throttling.periods, m.cpu.throttling.throttled_periods, m.cpu.throttling.throttled_time) == (
        10, 2, 3000)  # fmt: skip
    assert (m.memory.cache, m.memory.rss, m.memory.pg_pg_in, m.memory.hierarchical_swap_limit) == (4096, 8192, 11, 9)
    assert (m.memory.usage.usage, m.memory.usage.max, m.memory.total_inactive_file) == (65536, 70000, 1024)
    assert m.memory.swap.usage == 0  # no memsw files: zero, as upstream's IgnoreNotExist
    assert m.memory_oom_control.oom_kill == 3
    assert (m.pids.current, m.pids.limit) == (4, 0)  # "max" is 0 in v1's PidsStat


def test_v2_metrics(tmp_path):
    cg = fake(tmp_path, True, {
        "/cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
        "/memory.stat": "anon 4096\nfile 8192\ninactive_file 2048\n", "/memory.current": "16384\n",
        "/memory.max": "max\n", "/memory.events": "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n",
        "/pids.current": "3\n", "/pids.max": "100\n",
    })  # fmt: skip
    cg.paths = {"": cg.paths[""]}
    type_url, value = cg.stats()
    assert type_url == "io.containerd.cgroups.v2.Metrics"
    m = pb.cg2.Metrics.FromString(value)
    assert (m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec) == (1500, 1000, 500)
    assert (m.memory.anon, m.memory.inactive_file, m.memory.usage, m.memory.usage_limit) == (4096, 2048, 16384,
                                                                                            2**64 - 1)  # fmt: skip
    assert (m.memory_events.oom, m.memory_events.oom_kill, m.pids.limit) == (2, 1, 100)
