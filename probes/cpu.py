"""CPU: model, cores, frequency, the ISA flags llama.cpp cares about, cache sizes."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from ._util import run_main

# flag name as reported (cpuinfo / /proc/cpuinfo) -> name llama.cpp uses
FLAGS = {
    "avx": "AVX", "avx2": "AVX2", "fma": "FMA", "f16c": "F16C",
    "avx512f": "AVX512", "avx512_vnni": "AVX512_VNNI", "avx512vnni": "AVX512_VNNI",
    "avx512_bf16": "AVX512_BF16", "avx512bf16": "AVX512_BF16", "avx_vnni": "AVX_VNNI", "avxvnni": "AVX_VNNI",
    "amx_int8": "AMX_INT8", "amx_bf16": "AMX_BF16", "amx_tile": "AMX_TILE",
    "neon": "NEON", "asimd": "NEON", "asimddp": "DOTPROD", "dotprod": "DOTPROD",
    "i8mm": "I8MM", "sve": "SVE", "sve2": "SVE2", "fphp": "FP16", "asimdhp": "FP16",
}


def _size_to_bytes(text: str) -> int:
    t = text.strip().upper().replace("IB", "").replace("B", "")
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(t)


def sysfs_caches(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, int]:
    """Cache sizes per level from sysfs ({'L1d': .., 'L2': .., 'L3': ..})."""
    out: dict[str, int] = {}
    for idx in sorted(root.glob("index*")):
        try:
            level = (idx / "level").read_text().strip()
            ctype = (idx / "type").read_text().strip()
            size = _size_to_bytes((idx / "size").read_text())
        except (OSError, ValueError):
            continue
        if ctype == "Instruction":
            continue
        out["L1d" if level == "1" else f"L{level}"] = size
    return out


def _macos_caches() -> dict[str, int]:
    import subprocess

    out = {}
    for key, name in (("hw.l2cachesize", "L2"), ("hw.l3cachesize", "L3"), ("hw.perflevel0.l2cachesize", "L2")):
        r = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip().isdigit() and int(r.stdout) > 0:
            out[name] = max(out.get(name, 0), int(r.stdout))
    return out


def probe(quick: bool = False) -> dict:
    import cpuinfo
    import psutil

    info = cpuinfo.get_cpu_info()
    raw_flags = set(info.get("flags", []))
    flags = sorted({v for k, v in FLAGS.items() if k in raw_flags})
    caches = sysfs_caches() if platform.system() == "Linux" else {}
    if platform.system() == "Darwin":
        caches = _macos_caches()
    for key, name in (("l2_cache_size", "L2"), ("l3_cache_size", "L3")):
        v = info.get(key)
        if name not in caches and isinstance(v, int) and v > 0:
            caches[name] = v
    llc_level = max(caches, key=lambda k: int(k[1]) if k[1].isdigit() else 0) if caches else None
    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    return {
        "status": "ok",
        "model": info.get("brand_raw") or platform.processor() or "unknown",
        "arch": info.get("arch_string_raw") or platform.machine(),
        "physical_cores": psutil.cpu_count(logical=False) or os.cpu_count(),
        "logical_cores": psutil.cpu_count(logical=True) or os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "freq_mhz": round(freq.max or freq.current) if freq else None,
        "flags": flags,
        "caches_bytes": caches,
        "l2_bytes": caches.get("L2"),
        "llc_bytes": caches.get(llc_level) if llc_level else None,
        "llc_level": llc_level,
    }


if __name__ == "__main__":
    run_main(probe)
