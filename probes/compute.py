"""CPU compute: GEMM GFLOP/s through numpy's BLAS with all cores.

fp32 and fp64 are measured. numpy has no fp16/bf16 BLAS (its half-precision
matmul is a slow generic loop), so those are reported unavailable rather than
measured misleadingly; llama.cpp's own prompt-processing rate (calibrate) is
the reference for quantized compute.
"""

from __future__ import annotations

import time

from ._util import noisy_warnings, run_main, summarize, unavailable


def blas_info() -> dict:
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return {"name": blas.get("name"), "version": blas.get("version")}
    except Exception:  # older numpy: no dict mode
        return {"name": None, "version": None}


def gemm_gflops(dtype: str, n: int, reps: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b  # warm-up: thread pool start, page faults
    vals = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        vals.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return summarize(vals)


def probe(quick: bool = False) -> dict:
    n = 2048 if quick else 3072
    reps = 3 if quick else 5
    stats = {"fp32_gflops": gemm_gflops("float32", n, reps), "fp64_gflops": gemm_gflops("float64", n // 2 * 2, reps)}
    return {
        "status": "ok",
        "method": "numpy matmul (BLAS), all cores",
        "blas": blas_info(),
        "matrix_n": n,
        "fp32_gflops": round(stats["fp32_gflops"]["best"], 2),
        "fp64_gflops": round(stats["fp64_gflops"]["best"], 2),
        "fp16_gflops": None,
        "bf16_gflops": None,
        "half_precision": unavailable("numpy has no fp16/bf16 BLAS; see calibrate for llama.cpp's own rate"),
        "stats": stats,
        "warnings": noisy_warnings("compute", stats),
    }


if __name__ == "__main__":
    run_main(probe)
