"""Backend classes, which of them a device runs, and the CPU's compute at a thread count.

A backend class is a family of kernels whose speed parameters are fitted together
(device_db/speed_params.json). A device lists the classes it runs, its default
first (device_db/devices.csv `backends`, built by import_shared.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fitcheck.errors import UsageError

BACKENDS = {
    "cpu": "llama.cpp CPU (x86 AVX2 / AVX-512 / AMX; Arm NEON dotprod / i8mm / SVE)",
    "metal": "llama.cpp Metal (Apple GPUs)",
    "cuda": "llama.cpp CUDA (NVIDIA GPUs, Jetson, DGX Spark)",
    "vulkan": "llama.cpp Vulkan (NVIDIA, AMD, Intel and mobile GPUs)",
    "rocm": "llama.cpp HIP / ROCm (AMD GPUs, RDNA2 and later)",
    "sycl": "llama.cpp SYCL (Intel GPUs: Arc, Xe iGPUs, Data Center Max)",
    "opencl": "llama.cpp OpenCL (Qualcomm Adreno GPUs)",
    "hexagon": "llama.cpp Hexagon (Qualcomm NPU, HTP v73 and later)",
    "mlx": "MLX / mlx-lm (Apple silicon)",
    "mlc": "MLC LLM (compiled; Metal, OpenCL or Vulkan underneath)",
}


def check_backend(name: str) -> str:
    b = name.strip().lower()
    if b not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    return b


def check_runs(device_name: str, runs: tuple[str, ...], backend: str) -> None:
    if backend not in runs:
        raise UsageError(f"{device_name} cannot run the {backend} backend (it runs: {', '.join(runs)})")


@dataclass(frozen=True)
class Cluster:
    count: int
    ghz: float
    core: str


_CLUSTER = re.compile(r"(\d+)\s*x\s*(\d+(?:\.\d+)?)\s+([A-Za-z][\w.+-]*(?:\s[\w.+-]+)*)")


def clusters(cpu: str) -> list[Cluster]:
    """'1x3.36 Cortex-X3 + 2x2.8 Cortex-A715 + 3x2.0 Cortex-A510' -> clusters, fastest first as written."""
    out = []
    for part in cpu.split("+"):
        m = _CLUSTER.search(part.strip())
        if m:
            out.append(Cluster(int(m.group(1)), float(m.group(2)), m.group(3).split(" (")[0].strip()))
    return out


def n_cores(cpu: str) -> int:
    return sum(c.count for c in clusters(cpu))


_E_CORES = ("gracemont", "crestmont", "skymont", "apple-e")


def default_threads(cpu: str, kind: str) -> int:
    """What the usual runtime uses: phone apps 6 of 8 cores (the dev phone's llama.rn runs used 6); llama.cpp on a
    Mac or a hybrid Intel CPU its performance cores (common.cpp cpu_get_num_math: hw.perflevel0 on Apple, E-cores
    left out on x86), elsewhere every core."""
    cl = clusters(cpu)
    total = sum(c.count for c in cl)
    if kind in ("phone", "tablet"):
        return min(6, total)
    if len(cl) > 1 and any(c.core.lower() in _E_CORES for c in cl[1:]):
        return cl[0].count
    return total


@dataclass(frozen=True)
class CpuCompute:
    tflops: float  # fp32 FMA peak of the cores the threads run on
    threads: int
    cores: int
    note: str


def cpu_compute(cpu: str, threads: int, flops_per_cycle: dict[str, float]) -> CpuCompute | None:
    """fp32 FMA peak of the `threads` fastest cores: GHz x FMA pipes x lanes x 2, per core type (cpu_cores.csv).

    llama.cpp splits each matrix product into chunks the threads take in turn, so slow cores add their own
    rate rather than holding the fast ones back."""
    cl = clusters(cpu)
    if not cl:
        return None
    per_core = []
    for c in cl:
        f = flops_per_cycle.get(c.core.lower())
        if f is None:
            return None
        per_core += [c.ghz * f] * c.count
    per_core.sort(reverse=True)
    used = per_core[:threads]
    return CpuCompute(sum(used) / 1000, len(used), len(per_core),
                      f"{len(used)} of {len(per_core)} cores ({cpu}), {sum(used):.0f} GFLOP/s fp32 FMA peak")


# GPU architecture families whose matrix paths differ under one API (llama.cpp's Vulkan shaders use cooperative
# matrices where the driver offers them: NVIDIA's tensor cores, RDNA3's and RDNA4's WMMA, not RDNA2 or GCN; Intel's
# Arc runs the plain shaders), matched on the device name, the most specific first
_GPU_ARCHS = (
    # NVIDIA first (a laptop's name may carry its AMD CPU too), by generation: what its tensor cores do for
    # llama.cpp's CUDA kernels (mma.cuh: int8 MMA from Turing, none on Pascal/Volta's dp4a path; ampere_mma and
    # Blackwell's FP4), the newest names first ("RTX PRO 4000 Blackwell" is no Ampere "A4000")
    ("nvidia-blackwell", r"RTX 50\d0|RTX PRO \d{4}|\bG?B[123]00\b|\bGB10\b|DGX Spark|Thor\b|Blackwell"),
    ("nvidia-hopper", r"\bG?H[12]00\b|\bH800\b|\bH20\b|Hopper"),
    ("nvidia-ada", r"RTX 40\d0|\bL4\b|\bL40S?\b|\bL20\b|RTX \d{4} Ada|\bAda\b"),
    ("nvidia-ampere", r"RTX 30\d0|\bA(2|10G?|16|30|40|100|800)\b|RTX A\d{4}|\bA\d{4}\b|Orin|CMP 170HX"),
    ("nvidia-turing", r"RTX 20\d0|TITAN RTX|Quadro RTX|\bT4\b|\bT[1-6]00\b|GTX 16\d0"),
    ("nvidia-volta", r"V100|TITAN V\b|Xavier"),
    ("nvidia-pascal", r"GTX 10\d0|\bP(4|40|100|\d000)\b|TITAN Xp?\b|TX2"),
    ("nvidia", r"NVIDIA|GeForce|Jetson|Tesla|Quadro|\bRTX\b"),
    ("intel-arc", r"\bArc\b"),
    ("rdna4", r"RX 9\d{3}|R9[67]00|AI PRO R9"),
    ("rdna3", r"RX 7\d{3}|W7\d{3}|Radeon 8[0-9]{3}S|Radeon [78][4-9]0M|Strix Halo|Ryzen AI Max|8[67]00G"
              r"|\b[78][89]4[05](HS|U|H)\b|Ryzen AI [579] (HX )?3\d{2}"),
    ("rdna2", r"RX 6\d{3}|W6\d{3}|Radeon 6[68]0M"),
    ("cdna", r"\bMI(100|2[15]0X?|3[0-5][05]X|300A)\b"),  # matrix cores (MFMA), rocBLAS/hipBLASLt and MMQ on mfma
    ("gcn", r"RX [45][0-9]0\b|Vega|Radeon VII|MI[56]0\b"),
)


def gpu_arch(name: str) -> str:
    """The GPU architecture family of a device, by its name ("" when none is known)."""
    return next((arch for arch, pat in _GPU_ARCHS if re.search(pat, name, re.I)), "")
