"""Accelerators: mlx (Metal on Apple silicon, CUDA, or CPU) and NVIDIA GPUs via nvidia-smi.

On Linux without a GPU mlx runs on the CPU, about 100x slower than numpy's
BLAS: it is reported, labelled as CPU, and never used as a throughput reference.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from ._util import run_main, summarize, unavailable


def _mlx_bench(mx, n: int, reps: int) -> dict:
    out = {}
    for dtype_name in ("float32", "float16"):
        dtype = getattr(mx, dtype_name)
        a = mx.random.normal((n, n)).astype(dtype)
        b = mx.random.normal((n, n)).astype(dtype)
        mx.eval(a @ b)
        vals = []
        for _ in range(reps):
            t = time.perf_counter()
            mx.eval(a @ b)
            vals.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
        out[f"{'fp32' if dtype_name == 'float32' else 'fp16'}_gflops"] = summarize(vals)
    x = mx.zeros((n * n * 4,), dtype=mx.float32)
    mx.eval(x + 1)
    vals = []
    for _ in range(reps):
        t = time.perf_counter()
        mx.eval(x + 1)  # one read, one write per element
        vals.append(2 * x.nbytes / (time.perf_counter() - t) / 1e9)
    out["copy_gbps"] = summarize(vals)
    return out


def mlx_probe(quick: bool = False) -> dict:
    try:
        import mlx.core as mx
    except ImportError as e:
        return unavailable(f"mlx not importable: {e}", kind="mlx")
    metal = bool(getattr(mx, "metal", None) and mx.metal.is_available())
    cuda = bool(getattr(mx, "cuda", None) and mx.cuda.is_available())
    backend = "metal" if metal else "cuda" if cuda else "cpu"
    info = {}
    try:
        raw = mx.device_info() if hasattr(mx, "device_info") else mx.metal.device_info()
        info = {k: v for k, v in raw.items() if isinstance(v, (int, float, str))}
    except Exception:  # device_info is unavailable on some backends
        pass
    # CPU mlx is slow: a small problem is enough to show it and keeps the probe short
    n = 256 if backend == "cpu" else (2048 if quick else 4096)
    stats = _mlx_bench(mx, n, 2 if backend == "cpu" or quick else 5)
    return {
        "status": "ok",
        "kind": "mlx",
        "backend": backend,
        "version": getattr(mx, "__version__", None),
        "device": str(mx.default_device()),
        "throughput_reference": backend != "cpu",
        "label": "mlx on CPU: not a throughput reference (numpy BLAS measures CPU compute)" if backend == "cpu" else f"mlx on {backend}",
        "fp32_gflops": round(stats["fp32_gflops"]["best"], 2),
        "fp16_gflops": round(stats["fp16_gflops"]["best"], 2),
        "copy_gbps": round(stats["copy_gbps"]["best"], 2),
        "memory_bytes": info.get("memory_size"),
        "recommended_working_set_bytes": info.get("max_recommended_working_set_size"),
        "device_info": info,
        "stats": stats,
    }


NVIDIA_FIELDS = ("name", "memory.total", "memory.free", "driver_version", "clocks.max.memory", "clocks.max.sm", "pci.bus_id")


def parse_nvidia_smi(text: str) -> list[dict]:
    gpus = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(NVIDIA_FIELDS):
            continue
        d = dict(zip(NVIDIA_FIELDS, cells))
        gpus.append({
            "status": "ok",
            "kind": "nvidia",
            "name": d["name"],
            "memory_bytes": int(float(d["memory.total"]) * 1024**2) if d["memory.total"].replace(".", "").isdigit() else None,
            "memory_free_bytes": int(float(d["memory.free"]) * 1024**2) if d["memory.free"].replace(".", "").isdigit() else None,
            "driver": d["driver_version"],
            "max_mem_clock_mhz": d["clocks.max.memory"],
            "max_sm_clock_mhz": d["clocks.max.sm"],
            "pci_bus_id": d["pci.bus_id"],
        })
    return gpus


def nvidia_probe() -> list[dict]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        r = subprocess.run([exe, f"--query-gpu={','.join(NVIDIA_FIELDS)}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [unavailable(f"nvidia-smi failed: {e}", kind="nvidia")]
    if r.returncode != 0:
        return [unavailable(f"nvidia-smi exited {r.returncode}: {r.stderr.strip()[:200]}", kind="nvidia")]
    return parse_nvidia_smi(r.stdout)


def probe(quick: bool = False) -> dict:
    devices = [mlx_probe(quick)] + nvidia_probe()
    return {"status": "ok", "devices": devices}


if __name__ == "__main__":
    run_main(probe)
