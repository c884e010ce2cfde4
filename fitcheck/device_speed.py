"""Turn a device (probed profile, device_db entry, or overrides) into the speed model's inputs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .errors import UsageError
from .speed import BackendParams, DeviceSpeedSpec

FALLBACK_BACKEND = "cpu"  # classes with no fitted parameters (mobile GPU, Vulkan) use the CPU's


def from_profile(prof: dict[str, Any]) -> tuple[DeviceSpeedSpec, dict[str, Any]]:
    bw = prof.get("bandwidth", {})
    comp = prof.get("compute", {})
    disk = prof.get("disk", {})
    if bw.get("status") != "ok":
        raise UsageError("the saved profile has no bandwidth measurement; run `fitcheck probe` again")
    spec = DeviceSpeedSpec(backend="cpu", bw_gbps=bw["read_gbps"],
                           tflops=(comp.get("fp32_gflops") or 0) / 1000 or None,
                           disk_gbps=disk.get("read_gbps") if disk.get("status") == "ok" else None, name="this")
    basis = {"bandwidth": f"probed read {bw['read_gbps']} GB/s ({bw.get('method')})",
             "compute": f"probed fp32 GEMM {comp.get('fp32_gflops')} GFLOP/s", "backend": "cpu (llama.cpp CPU)"}
    cal = prof.get("calibration")
    if isinstance(cal, dict) and isinstance(cal.get("params"), dict):
        basis["calibration"] = {"created": cal.get("created"), "source": cal.get("source"), "params": cal["params"]}
    return spec, basis


def from_device(dev) -> tuple[DeviceSpeedSpec, dict[str, Any]]:
    if not dev.bw_gbps:
        raise UsageError(f"{dev.name} has no memory bandwidth in the database; give --bandwidth-gbs")
    # Apple GPUs: fp16 = fp32 rate; CUDA cards: the non-tensor fp32 figure (what the CUDA fit used)
    tflops = dev.fp32_tflops if dev.backend == "cuda" else (dev.fp16_tflops or dev.fp32_tflops)
    spec = DeviceSpeedSpec(backend=dev.backend, bw_gbps=dev.bw_gbps, tflops=tflops, name=dev.id)
    return spec, {"bandwidth": f"{dev.bw_gbps} GB/s peak ({dev.verification})",
                  "compute": f"{tflops} TFLOPS" if tflops else "unknown (compute term left out; decode reads high)",
                  "backend": dev.backend}


def with_overrides(spec: DeviceSpeedSpec, basis: dict, bandwidth_gbs: float | None, tflops: float | None,
                   backend: str | None) -> tuple[DeviceSpeedSpec, dict]:
    if bandwidth_gbs is not None:
        if not 0 < bandwidth_gbs < 1e5:
            raise UsageError(f"--bandwidth-gbs must be between 0 and 100000, got {bandwidth_gbs}")
        spec = replace(spec, bw_gbps=bandwidth_gbs)
        basis["bandwidth"] = f"{bandwidth_gbs} GB/s (--bandwidth-gbs)"
    if tflops is not None:
        if not 0 < tflops < 1e5:
            raise UsageError(f"--tflops must be between 0 and 100000, got {tflops}")
        spec = replace(spec, tflops=tflops)
        basis["compute"] = f"{tflops} TFLOPS (--tflops)"
    if backend is not None:
        spec = replace(spec, backend=backend.lower())
        basis["backend"] = f"{backend.lower()} (--backend)"
    return spec, basis


def params_for_basis(backend: str, basis: dict) -> tuple[BackendParams, str, bool]:
    """Calibrated parameters when the profile has them, else the fitted class parameters."""
    from .speed import params_from_dict

    cal = basis.get("calibration")
    if cal:
        return params_from_dict(cal["params"]), f"calibrated on this device ({cal['source']}, {cal['created']})", True
    params, note = params_for(backend)
    return params, note, False


def params_for(backend: str) -> tuple[BackendParams, str]:
    from .backtest import backend_params, fitted_params

    table = fitted_params()["backends"]
    key = backend if backend in table else FALLBACK_BACKEND
    note = f"{backend}: {table[key].get('source', '')}" if key == backend else \
        f"no fitted parameters for {backend!r}; the {key} class is used"
    return backend_params(key), note
