"""Whether an OS lets an app page its mapped weights, from which storage, and which weights llama.cpp repacks.

The estimator (fitcheck.estimator.paging) applies these; each rule carries its source.
"""

from __future__ import annotations

from dataclasses import replace

from device_db import Device, storage_facts

from fitcheck.estimator.paging import PagingRule

OS_MDOC = "shared/data/os_memory_limits.md"
# Does the OS drop an app's clean mapped file pages under its limit (and read them again), rather than kill it?
OS_PAGING = {
    "iOS": (True, "iOS counts an app's dirty memory (its footprint) against the jetsam limit; clean mapped file pages "
                  f"are not in the footprint and are dropped under pressure ({OS_MDOC} §1.1 'Only dirty pages count' "
                  "[secondary]; PocketPal's iPhone 13 Pro log: phys_footprint 0.43 GB while 1.72 GB resident [primary data])"),
    "Android": (True, "lmkd and Android 17's Memory Limiter act on anonymous memory and swap (memory.high, "
                      f"'MemoryLimiter:AnonSwap'); mapped file pages are reclaimable page cache ({OS_MDOC} §3.1 [primary])"),
    "Linux": (True, "the mapped GGUF is page cache: reclaimable, charged to the cgroup and read again on a fault "
                    f"({OS_MDOC} §4 [user, measured]; measured here: benchmarks/paging_vs_llama.py)"),
    "macOS": (True, "macOS evicts clean file-backed pages under memory pressure and reads them again on a fault "
                    "(fitcheck assumption [derived]; the Metal backend wires its buffers instead)"),
    "Windows": (True, "mapped file pages are dropped to the standby list and read again on a fault "
                      "(fitcheck assumption [derived])"),
    "GPU": (False, "a discrete GPU's weights sit in VRAM, which cannot page"),
}
OS_PAGING["iPadOS"] = OS_PAGING["iOS"]

# GGML types llama.cpp's CPU backend copies into its CPU_REPACK buffer by default (use_extra_bufts=true):
# ggml/src/ggml-cpu/repack.cpp ggml_repack_get_optimal_repack_type. x86 checked here on AVX-512 with
# llama-cpp-python 0.3.36 (synthetic models' load logs: Q4_0, Q4_K and Q2_K repacked; Q4_1, Q5_0, Q5_K, Q6_K,
# Q3_K, Q8_0 mapped); Arm from the source (secondary).
REPACK_SOURCE = "llama.cpp ggml-cpu/repack.cpp (x86 checked on llama-cpp-python 0.3.36 load logs)"
REPACKED = {
    "x86-avx2": frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"}),
    "x86-avx512": frozenset({"Q4_0", "Q4_K", "Q2_K", "IQ4_NL", "MXFP4"}),
    "arm-dotprod": frozenset({"Q4_0", "Q4_K", "IQ4_NL"}),
    "arm-i8mm": frozenset({"Q4_0", "Q4_K", "IQ4_NL", "Q8_0"}),
}
ARM_FAMILIES = ("Apple", "Snapdragon", "Dimensity", "Tensor", "Exynos", "Jetson", "SBC", "NVIDIA SoC")


def isa_of_flags(arch: str, flags: list[str] | tuple[str, ...]) -> str | None:
    f = {x.upper() for x in flags}
    if arch.lower() in ("x86_64", "amd64", "x86"):
        return "x86-avx512" if "AVX512" in f else ("x86-avx2" if "AVX2" in f else None)
    if arch.lower() in ("arm64", "aarch64"):
        return "arm-i8mm" if "I8MM" in f else ("arm-dotprod" if "DOTPROD" in f else None)
    return None


def isa_of_device(dev: Device) -> str | None:
    """The CPU path llama.cpp takes on a database device (Arm chips since 2021 have dotprod and i8mm)."""
    if dev.kind == "gpu":
        return None
    if any(dev.family.startswith(a) for a in ARM_FAMILIES):
        return "arm-i8mm" if (dev.year or 0) >= 2022 else "arm-dotprod"
    return "x86-avx2"


def storage_of(dev: Device) -> tuple[float | None, str]:
    """Storage read GB/s of a database device (its own row, else its family's), with the source."""
    facts = storage_facts()
    for kind, key in (("device", dev.name), ("family", dev.family)):
        for s in facts:
            if s.match_kind == kind and s.match.lower() == key.lower() and s.seq_read_gbps:
                return s.seq_read_gbps, f"{s.storage} {s.seq_read_gbps:g} GB/s sequential read — {s.source} [{s.verification}]"
    return None, "no storage figure for this device in device_db/storage.csv"


def rule_for(os_name: str, storage_gbps: float | None, storage_source: str, isa: str | None,
             repack: bool = True) -> PagingRule:
    evicts, text = OS_PAGING.get(os_name, OS_PAGING["Linux"])
    types = REPACKED.get(isa or "", frozenset()) if repack else frozenset()
    return PagingRule(evicts, f"{os_name}: {text}", storage_read_gbps=storage_gbps, storage_source=storage_source,
                      repacked_types=types, repack_source=f"{REPACK_SOURCE}; {isa}" if types else "")


def device_rule(dev: Device, os_name: str) -> PagingRule:
    gbps, src = storage_of(dev)
    return rule_for(os_name, gbps, src, isa_of_device(dev))


def profile_rule(prof: dict) -> PagingRule:
    """This machine: its OS, the disk probe's page-fault read rate, and whether its llama.cpp repacks."""
    import platform

    disk = prof.get("disk") if isinstance(prof.get("disk"), dict) else {}
    ok = disk.get("status") == "ok"
    gbps = (disk.get("paging_read_gbps") or disk.get("fault_read_gbps") or disk.get("read_gbps")) if ok else None
    how = ("re-read under a memory limit" if disk.get("paging_read_gbps") else
           "page-fault read (no memory cgroup to probe paging itself; reclaim not counted)" if disk.get("fault_read_gbps")
           else "sequential read")
    src = (f"probed {how} {gbps:g} GB/s in {disk.get('path')} ({disk.get('fs_type') or 'unknown fs'})" if gbps
           else f"no disk probe ({disk.get('reason', 'not run')})")
    cpu = prof.get("cpu") if isinstance(prof.get("cpu"), dict) else {}
    kernels = prof.get("kernels") if isinstance(prof.get("kernels"), dict) else {}
    system = (prof.get("platform") or {}).get("system") or platform.system()
    os_name = {"Darwin": "macOS"}.get(system, system if system in OS_PAGING else "Linux")
    rule = rule_for(os_name, gbps, src, isa_of_flags(cpu.get("arch", ""), cpu.get("flags") or []),
                    repack=bool(kernels.get("repack", True)))
    rnd = disk.get("paging_random_read_gbps") if ok else None
    return replace(rule, random_read_gbps=rnd) if rnd else rule
