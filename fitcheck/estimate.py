"""`fitcheck estimate`: resolve a model and a device, run the memory model, give a verdict."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import ProfileError, UsageError
from .fit import TIGHT_MARGIN, fit_verdict
from .memory import estimate_memory
from .model_spec import ModelSpec
from .settings import RuntimeSettings

GIB = 1 << 30
DEFAULT_QUANT = "Q4_K_M"


def _looks_like_path(model: str) -> bool:
    return model.endswith(".gguf") or os.sep in model or Path(model).exists()


def resolve_model(model: str, quant: str | None) -> tuple[ModelSpec, dict[str, Any]]:
    """A ModelSpec from a GGUF path, a catalog id or a size alias, and how it was resolved."""
    if _looks_like_path(model):
        from .inspection import load_spec

        spec = load_spec(model)
        if quant and quant.upper().replace("-", "_") != (spec.file_type or "").upper():
            raise UsageError(f"{model} is a {spec.file_type} file; --quant applies to catalog models, not files")
        return spec, {"source": "gguf", "path": str(model), "file_type": spec.file_type}
    from .catalog import resolve, spec_from_catalog
    from .quants import get_format

    entry, alias = resolve(model)
    q = get_format(quant or DEFAULT_QUANT).name
    spec = spec_from_catalog(entry, q)
    basis = {"source": "catalog", "id": entry.id, "name": entry.name, "quant": q,
             "config_source": entry.source, "config_verification": entry.verification}
    if alias:
        basis["alias"] = f"{alias} -> {entry.id} (representative {entry.name})"
    if not quant:
        basis["quant_default"] = f"no --quant given: {DEFAULT_QUANT}"
    return spec, basis


def usable_memory(device: str | None, memory_gb: float | None, entitlement: bool = False) -> tuple[int, dict[str, Any]]:
    """Usable bytes for the verdict and where the figure came from."""
    if memory_gb is not None:
        if not 0 < memory_gb <= 1 << 20:
            raise UsageError(f"--memory-gb must be between 0 and {1 << 20}, got {memory_gb}")
        return int(memory_gb * GIB), {"memory": f"--memory-gb {memory_gb} (GiB, taken as usable as given)"}
    dev = (device or "this").strip()
    if dev.lower().endswith(".json"):
        from . import profile

        mem = profile.load(Path(dev))["memory"]
        usable = min(mem["available_bytes"], mem["limit_bytes"])
        return usable, {"memory": f"saved profile {dev}: available {mem['available_bytes']} B of limit {mem['limit_bytes']} B"}
    if dev.lower() != "this":
        import device_db

        d, ram_gb = device_db.resolve(dev)
        usable, basis = device_db.device_usable_bytes(d, ram_gb, entitlement)
        basis["memory"] = f"{d.name}, {basis['ram_gb']} GB: {basis['memory_rule']}"
        return usable, basis
    from . import profile

    try:
        prof = profile.load()
        mem = prof["memory"]
        src = f"saved profile {profile.profile_path()} ({prof.get('created')})"
    except ProfileError:
        from probes import memory

        mem = memory.probe()
        src = "live memory probe (no saved profile; run `fitcheck probe` for the full one)"
    usable = min(mem["available_bytes"], mem["limit_bytes"])
    return usable, {"memory": f"{src}: available {mem['available_bytes']} B of limit {mem['limit_bytes']} B ({mem.get('limit_source')})"}


def speed_inputs(device: str | None, bandwidth_gbs: float | None = None, tflops: float | None = None,
                 backend: str | None = None):
    """The speed model's device inputs for `device` ('this' = probed profile), with overrides."""
    from . import device_speed

    dev = (device or "this").strip()
    if dev.lower().endswith(".json"):
        from . import profile

        spec, basis = device_speed.from_profile(profile.load(Path(dev)))
    elif dev.lower() == "this":
        from . import profile

        try:
            spec, basis = device_speed.from_profile(profile.load())
        except ProfileError:
            if bandwidth_gbs is None:
                raise UsageError("speed for 'this' needs a probed profile: run `fitcheck probe` (or give --bandwidth-gbs)") from None
            from .speed import DeviceSpeedSpec

            spec, basis = DeviceSpeedSpec(backend="cpu", bw_gbps=bandwidth_gbs, tflops=None, name="this"), {}
    else:
        import device_db

        spec, basis = device_speed.from_device(device_db.resolve(dev)[0])
    return device_speed.with_overrides(spec, basis, bandwidth_gbs, tflops, backend)


def estimate(model: str, quant: str | None = None, settings: RuntimeSettings | None = None,
             device: str | None = None, memory_gb: float | None = None, n_prompt: int = 512,
             entitlement: bool = False, bandwidth_gbs: float | None = None, tflops: float | None = None,
             backend: str | None = None) -> dict[str, Any]:
    from . import device_speed
    from .speed import estimate_speed

    s = settings or RuntimeSettings()
    spec, model_basis = resolve_model(model, quant)
    mem = estimate_memory(spec, s, n_prompt=n_prompt)
    usable, dev_basis = usable_memory(device, memory_gb, entitlement)
    warnings = list(mem.notes)
    try:
        dspec, speed_basis = speed_inputs(device, bandwidth_gbs, tflops, backend)
    except UsageError as e:
        if "fitcheck probe" not in str(e):
            raise
        dspec, sp = None, None  # memory answers without a profile; speed needs the probe
        warnings.append(f"no speed estimate: {e}")
    if dspec is not None:
        params, params_note, calibrated = device_speed.params_for_basis(dspec.backend, speed_basis)
        sp = estimate_speed(spec, dspec, params, n_prompt=n_prompt, n_ubatch=s.n_ubatch)
        speed_basis = {**{k: v for k, v in speed_basis.items() if k != "calibration"}, "bw_gbps": dspec.bw_gbps,
                       "tflops": dspec.tflops, "disk_gbps": dspec.disk_gbps, "parameters": params_note,
                       "n_prompt": n_prompt, "calibrated": calibrated}
    needed = mem.total_bytes
    fit = fit_verdict(needed, usable)
    return {
        "model": {"name": spec.name, "architecture": spec.architecture, "parameter_count": spec.parameter_count,
                  "quant": spec.file_type, "bits_per_weight": round(spec.bits_per_weight, 4), "n_layer": spec.n_layer,
                  "n_ctx_train": spec.n_ctx_train},
        "memory": mem.to_dict(),
        "fit": fit.to_dict(),
        "speed": sp.to_dict() if sp else None,
        "warnings": warnings,
        "basis": {
            **model_basis,
            **dev_basis,
            "settings": asdict(s),
            "speed_inputs": speed_basis if sp else None,
            "verdict_uses": "reserved total (weights + full-context KV cache + worst-case compute buffer + output + runtime overhead)",
            "resident_note": f"resident_bytes is the RSS expected after a {n_prompt}-token prompt and generation (compute buffer only partly touched)",
            "tight_margin": f"'tight' when the reserved total is within the last {TIGHT_MARGIN:.0%} of usable memory",
            "kv_cache": "llama.cpp layout: context padded to 256 cells; sliding-window layers sized window + ubatch (padded) unless swa_full",
        },
    }
