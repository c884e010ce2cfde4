"""The main job: can this device run 1.8B, 4B and 7B, and at which quantization?

Memory verdicts come from the memory model against the usable memory (probed,
or a database device's per-app OS rule); speed from the speed model on the
probed bandwidth and compute (calibrated when `fitcheck calibrate` has run)
or on the device's published specs.
"""

from __future__ import annotations

from typing import Any, Callable

from .catalog import resolve, spec_from_catalog
from .fit import fit_verdict
from .memory import estimate_memory
from .quants import LADDER
from .settings import RuntimeSettings
from .speed import estimate_speed

SIZES = ("1.8b", "4b", "7b")


def decode_upper_bound_tps(spec, read_gbps: float | None) -> float | None:
    """Tokens/s if every weight but the embedding table were read once per token at full read bandwidth."""
    if not read_gbps:
        return None
    embd = next((t.n_bytes for t in spec.tensors if t.name == "token_embd.weight"), 0)
    tied = not any(t.name == "output.weight" for t in spec.tensors)
    per_token = spec.weights_bytes - (0 if tied else embd)
    return read_gbps * 1e9 / per_token


def answer(usable_bytes: int, speed_dev=None, params=None, calibrated: bool = False, read_gbps: float | None = None,
           sizes=SIZES, quants=LADDER, settings: RuntimeSettings | None = None,
           on_row: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Memory, verdict, prefill and decode for each size x quantization on one device."""
    s = settings or RuntimeSettings()
    rows, lines = [], []
    for size in sizes:
        entry, _ = resolve(size)
        best = tightest = smallest = None
        for q in quants:
            spec = spec_from_catalog(entry, q)
            est = estimate_memory(spec, s)
            fit = fit_verdict(est.total_bytes, usable_bytes)
            sp = estimate_speed(spec, speed_dev, params, n_ubatch=s.n_ubatch) if speed_dev else None
            row = {"size": size, "model": entry.name, "model_id": entry.id, "quant": q,
                   "params_b": round(spec.parameter_count / 1e9, 3),
                   "bits_per_weight": round(spec.bits_per_weight, 3), "total_bytes": est.total_bytes,
                   "resident_bytes": est.resident_bytes, "verdict": fit.verdict,
                   "breakdown": {"weights_bytes": est.weights_bytes, "kv_bytes": est.kv_cache_bytes,
                                 "compute_bytes": est.compute_bytes,
                                 "other_bytes": est.output_bytes + est.overhead_bytes},
                   "decode_tps": sp.decode_tps if sp else None, "prefill_tps": sp.prefill_tps if sp else None,
                   "decode_tps_upper_bound": decode_upper_bound_tps(spec, read_gbps)}
            rows.append(row)
            if on_row:
                on_row(f"{size} {q}")
            if fit.verdict == "fits" and best is None:
                best = row
            if fit.verdict == "tight" and tightest is None:
                tightest = row
            smallest = row
        lines.append(_line(size, entry.name, best, tightest, smallest, usable_bytes))
    return {"usable_bytes": usable_bytes, "settings": {"n_ctx": s.n_ctx, "runtime": s.runtime, "n_prompt": 512},
            "rows": rows, "answers": lines, "calibrated": calibrated,
            "verdict_uses": "reserved total (weights + full-context KV cache + worst-case compute buffer + overhead)"}


def answer_for_profile(profile: dict[str, Any], **kw) -> dict[str, Any]:
    """The main job on a probed profile: usable memory from the probe, speed from its bandwidth and GEMM rate."""
    mem = profile["memory"]
    usable = min(mem["available_bytes"], mem["limit_bytes"])
    bw = profile.get("bandwidth", {})
    read_gbps = bw.get("read_gbps") if bw.get("status") == "ok" else None
    speed_dev = params = None
    calibrated = False
    if read_gbps:
        from .device_speed import from_profile, params_for_basis

        speed_dev, basis = from_profile(profile)
        params, _, calibrated = params_for_basis(speed_dev.backend, basis)
    d = answer(usable, speed_dev, params, calibrated, read_gbps, **kw)
    d["speed_basis"] = "speed model on the probed read bandwidth and fp32 GEMM rate, " + (
        "calibrated by a real llama.cpp run on this device (fitcheck calibrate)" if calibrated else
        "CPU class parameters (device_db/speed_params.json); not calibrated: run `fitcheck calibrate`")
    d["profile"] = {"created": profile.get("created"), "cpu": profile.get("cpu", {}).get("model"),
                    "read_gbps": read_gbps}
    return d


def answer_for_device(name: str, entitlement: bool = False, **kw) -> dict[str, Any]:
    """The main job for a device of the database (NAME or NAME:RAM)."""
    import device_db

    from .device_speed import from_device, params_for

    dev, ram_gb = device_db.resolve(name)
    usable, basis = device_db.device_usable_bytes(dev, ram_gb, entitlement)
    speed_dev = params = None
    note = "no bandwidth in the database: no speed"
    if dev.bw_gbps:
        speed_dev, sbasis = from_device(dev)
        params, note = params_for(speed_dev.backend)
        note = f"speed model on {sbasis['bandwidth']}, compute {sbasis['compute']}; parameters: {note}"
    d = answer(usable, speed_dev, params, False, None, **kw)
    d["speed_basis"] = note
    d["device"] = {**basis, "name": dev.name, "id": dev.id, "bw_gbps": dev.bw_gbps, "fp16_tflops": dev.fp16_tflops,
                   "fp32_tflops": dev.fp32_tflops, "release": dev.release or dev.year, "backend": dev.backend}
    return d


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _line(size, name, best, tight, smallest, usable) -> str:
    label = f"{size.upper()} ({name})"
    if best:
        speed = f", ~{best['decode_tps']:.1f} t/s decode" if best["decode_tps"] else ""
        if best["prefill_tps"]:
            speed += f", ~{best['prefill_tps']:.0f} t/s prefill"
        return f"{label}: yes, {best['quant']} — needs {_gb(best['total_bytes'])} of {_gb(usable)} usable{speed}"
    if tight:
        return f"{label}: tight, {tight['quant']} — needs {_gb(tight['total_bytes'])} of {_gb(usable)} usable"
    return f"{label}: no — needs {_gb(smallest['total_bytes'])} even at {smallest['quant']}, {_gb(usable)} usable"
