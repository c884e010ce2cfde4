"""Real probes at small sizes: sane, consistent values; cgroup parsing on fixture trees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probes import accelerators, bandwidth, compute, cpu, disk, memory, runtime
from probes.memory import cgroup_limit
from probes.runtime import parse_system_info


def test_memory_probe_is_consistent():
    m = memory.probe()
    assert m["status"] == "ok"
    assert 0 < m["available_bytes"] <= m["total_bytes"]
    assert 0 < m["limit_bytes"] <= m["total_bytes"]
    import psutil

    assert m["total_bytes"] == psutil.virtual_memory().total


def test_cpu_probe():
    c = cpu.probe()
    assert c["logical_cores"] >= c["physical_cores"] >= 1
    assert c["llc_bytes"] and c["llc_bytes"] >= (c["l2_bytes"] or 0)
    if Path("/proc/cpuinfo").exists():
        text = Path("/proc/cpuinfo").read_text()
        assert ("AVX2" in c["flags"]) == (" avx2" in text)
        assert ("AVX512" in c["flags"]) == (" avx512f" in text)


def test_bandwidth_probe_small_and_consistent():
    # an 8 MiB "LLC" keeps buffers at the 64 MiB minimum: a quick, real run
    b = bandwidth.probe(quick=True, llc_bytes=8 << 20)
    assert b["status"] == "ok", b
    assert b["array_bytes"] >= 8 * (8 << 20)
    for k in ("read_gbps", "copy_gbps", "triad_gbps"):
        assert 0.5 < b[k] < 2000, (k, b[k])
    st = b["stats"]["read_gbps"]
    assert st["best"] >= st["median"] and 3 <= st["n"] <= 12  # repeated until the median settles, within a budget
    assert isinstance(st["settled"], bool) and (not st["settled"] or st["median_ci"] <= 0.05)
    assert set(b["thread_scaling_read_gbps"]) >= {"1"}
    assert b["cache_resident_read_gbps"] > 0


def test_bandwidth_numpy_fallback_agrees_in_magnitude():
    c = bandwidth.probe(quick=True, llc_bytes=8 << 20)
    n = bandwidth.probe(quick=True, llc_bytes=8 << 20, force_numpy=True)
    assert n["method"].startswith("numpy")
    for k in ("read_gbps", "copy_gbps", "triad_gbps"):
        assert 0.2 < n[k] / c[k] < 5, (k, n[k], c[k])


def test_compute_probe():
    c = compute.probe(quick=True)
    assert c["fp32_gflops"] > 1
    assert c["fp64_gflops"] > 0  # (which is faster is a speed on a possibly busy machine: not a test)
    assert c["half_precision"]["status"] == "unavailable"


def test_mlx_runs_on_cpu_here_and_says_so():
    d = accelerators.mlx_probe(quick=True)
    assert d["status"] == "ok"
    if sys.platform == "linux":
        assert d["backend"] in ("cpu", "cuda")
        if d["backend"] == "cpu":
            assert d["throughput_reference"] is False
            assert "not a throughput reference" in d["label"]
            assert d["fp32_gflops"] > 0


def test_nvidia_smi_parsing():
    text = "NVIDIA H100 80GB HBM3, 81559, 80000, 550.54.15, 2619, 1980, 00000000:00:07.0\n"
    (g,) = accelerators.parse_nvidia_smi(text)
    assert g["name"] == "NVIDIA H100 80GB HBM3" and g["memory_bytes"] == 81559 * 1024**2
    assert g["driver"] == "550.54.15"


def test_disk_probe(tmp_path):
    d = disk.probe(quick=True, directory=tmp_path)
    assert d["status"] == "ok"
    assert d["file_bytes"] == 128 << 20
    assert d["read_gbps"] > 0.01
    assert list(tmp_path.iterdir()) == []  # the test file is gone


def test_runtime_probe():
    r = runtime.probe()
    assert r["status"] == "ok"
    assert "CPU" in r["backends"]
    import llama_cpp

    assert r["llama_cpp_python"] == llama_cpp.__version__


def test_parse_system_info_sections():
    info = parse_system_info("Metal : EMBED_LIBRARY = 1 | BF16 = 1 | CPU : NEON = 1 | ARM_FMA = 1 | DOTPROD = 1 |")
    assert info["Metal"] == {"EMBED_LIBRARY": "1", "BF16": "1"}
    assert info["CPU"]["DOTPROD"] == "1"


@pytest.mark.parametrize("name", ["memory", "cpu", "runtime"])
def test_probe_modules_run_alone(name):
    r = subprocess.run([sys.executable, "-m", f"probes.{name}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "ok"


# --- cgroup fixtures -----------------------------------------------------------------------

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_takes_tightest_ancestor(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "cpu memory\n")
    _write(root / "system.slice" / "memory.max", "4294967296\n")
    _write(root / "system.slice" / "app.scope" / "memory.max", "max\n")
    _write(root / "system.slice" / "app.scope" / "memory.current", "1000\n")
    _write(root / "system.slice" / "memory.current", "2147483648\n")
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/system.slice/app.scope\n")
    cg = cgroup_limit(proc, root)
    assert cg == {"version": "v2", "limit_bytes": 4294967296, "usage_bytes": 2147483648}


def test_cgroup_v2_unlimited(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "memory\n")
    _write(root / "memory.max", "max\n")
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/\n")
    assert cgroup_limit(proc, root)["limit_bytes"] is None


def test_cgroup_v1_limit_and_unlimited_sentinel(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "memory" / "docker" / "abc" / "memory.limit_in_bytes", "536870912\n")
    _write(root / "memory" / "docker" / "abc" / "memory.usage_in_bytes", "1048576\n")
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    proc = tmp_path / "proc_cgroup"
    _write(proc, "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    cg = cgroup_limit(proc, root)
    assert cg == {"version": "v1", "limit_bytes": 536870912, "usage_bytes": 1048576}


def test_cgroup_v1_namespaced_path_falls_back_to_mount_root(tmp_path):
    # inside a cgroup namespace the path in /proc/self/cgroup is not under the mount
    root = tmp_path / "cgroup"
    _write(root / "memory" / "memory.limit_in_bytes", "1073741824\n")
    proc = tmp_path / "proc_cgroup"
    _write(proc, "4:memory:/process_api/4e46d64c\n")
    assert cgroup_limit(proc, root)["limit_bytes"] == 1073741824


def test_cgroup_missing_proc_file(tmp_path):
    assert cgroup_limit(tmp_path / "nope", tmp_path)["limit_bytes"] is None


def test_repeat_until_stable_stops_early_on_steady_values_and_not_on_noisy_ones():
    from probes._util import median_ci_halfwidth, repeat_until_stable

    steady = iter([10.0, 10.1, 9.9, 10.0, 10.05] * 10)
    values, settled = repeat_until_stable(lambda: next(steady), 3, 20, 5.0)
    assert settled and len(values) <= 5
    import random

    rng = random.Random(0)
    values, settled = repeat_until_stable(lambda: rng.uniform(5, 20), 3, 12, 5.0)
    assert not settled and len(values) == 12 and median_ci_halfwidth(values) > 0.05


def test_cpu_steal_is_read_from_proc_stat():
    from probes._util import cpu_times, steal_fraction

    a = cpu_times()
    sum(i * i for i in range(200_000))
    b = cpu_times()
    if a is None:
        pytest.skip("no /proc/stat here")
    f = steal_fraction(a, b)
    assert f is None or 0.0 <= f <= 1.0


def test_cpu_clock_ratio_reads_cpufreq(tmp_path):
    """The slowest core's clock against its maximum, from a cpufreq tree; None where there is none (this VM's case)."""
    from probes._util import cpu_clock_ratio

    for i, (cur, top) in enumerate(((2_400_000, 3_000_000), (1_500_000, 3_000_000))):
        d = tmp_path / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{cur}\n")
        (d / "cpuinfo_max_freq").write_text(f"{top}\n")
    assert cpu_clock_ratio(str(tmp_path)) == pytest.approx(0.5)
    assert cpu_clock_ratio(str(tmp_path / "none")) is None
    real = cpu_clock_ratio()
    assert real is None or 0 < real <= 1.5  # turbo can read above the base maximum on some drivers
