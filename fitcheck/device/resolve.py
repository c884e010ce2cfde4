"""One device resolver: 'this' (the probed profile), a saved profile file, or a database device -> Target.

Every command resolves its device here once; the estimator then works on the
Target alone. Usable memory comes with the rule that produced it, speed
inputs with theirs, and anything shaky (no profile, a busy probe, no
bandwidth in the database) as a warning the answer carries.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from fitcheck.device import device_speed
from fitcheck.errors import NoProfileError, NoSpeedError, ProfileError, UsageError
from fitcheck.estimator.evaluate import Alternatives, HostSide, Target

MAX_MEMORY_GB = 1 << 20


def gb_option(value: float | None, option: str) -> int | None:
    """A memory option in GB (1e9 bytes, the unit fitcheck prints) as bytes, range-checked."""
    if value is None:
        return None
    if not (math.isfinite(value) and 0 < value <= MAX_MEMORY_GB):
        raise UsageError(f"{option} must be a size in GB between 0 and {MAX_MEMORY_GB}, got {value:g}")
    return int(value * 1e9)


def profile_usable(prof: dict[str, Any]) -> tuple[int, str]:
    """Usable bytes from a profile's memory section: the smaller of available memory and the container limit."""
    mem = prof.get("memory")
    if not isinstance(mem, dict) or mem.get("status") not in (None, "ok"):
        why = mem.get("reason") if isinstance(mem, dict) else "missing"
        raise ProfileError(f"the saved profile has no memory measurement ({why}); run `fitcheck probe` again")
    vals = [mem.get("available_bytes"), mem.get("limit_bytes")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 60 for v in vals):
        raise ProfileError("the saved profile's memory figures are not positive byte counts; run `fitcheck probe` again")
    usable = min(vals)
    limited = mem["limit_bytes"] < mem["available_bytes"]
    rule = (f"container limit {usable / 1e9:.1f} GB ({mem.get('limit_source')}; {mem['available_bytes'] / 1e9:.1f} GB available)"
            if limited else
            f"{usable / 1e9:.1f} GB available (limit {mem['limit_bytes'] / 1e9:.1f} GB: {mem.get('limit_source')})")
    return usable, rule


def _shaky(w: str) -> bool:
    """A probe warning that an answer repeats and that widens its interval: load, an unsettled or cut measurement."""
    return "under load" in w or "did not settle" in w or w.startswith("kernel probe:")


def _profile_warnings(prof: dict[str, Any]) -> tuple[str, ...]:
    """The probe's warnings every answer resting on it repeats: a busy machine, a measurement that did not settle."""
    return tuple(w for w in prof.get("warnings", []) if isinstance(w, str) and _shaky(w))


# how far the speed model is off where it was checked, before any probe noise (decode, prefill); see README
MODEL_UNCERTAINTY = {"cpu-kernels": (0.12, 0.2), "cpu": (0.5, 0.6)}
BUSY_WIDENING = 1.5


def uncertainty(spec, params, calibrated: bool, basis: dict, prof: dict | None, busy: bool) -> tuple[float, float]:
    """Relative uncertainty of decode and prefill: the model's own error (a calibration's residuals, else
    what held-out checks measured) combined with the probe's spread; wider on a busy machine."""
    import math

    from fitcheck.estimator.speed import CpuKernelParams

    if spec is None:
        return (0.0, 0.0)
    if calibrated:
        rms = (basis.get("calibration") or {}).get("uncertainty") or 0.1
        model = (max(rms * 2, 0.05), max(rms * 3, 0.1))  # a calibration reproduces its runs better than new models
    elif isinstance(params, CpuKernelParams):
        model = MODEL_UNCERTAINTY["cpu-kernels"]
    elif spec.backend == "cpu":
        model = MODEL_UNCERTAINTY["cpu"]
    else:
        lofo = device_speed.fitted_params()["backends"].get(spec.backend, {}).get("lofo_mape") or {}
        model = (lofo.get("decode", 0.3), lofo.get("prefill", 0.4))
        if spec.backend == "hexagon" and spec.peak_tflops and spec.peak_tflops != 1.0:
            # an HTP rated from the vendor's claims (device_speed.htp_rate): as claimed, or no faster than the v73
            model = (model[0], math.hypot(model[1], spec.peak_tflops - 1))
    probe = 0.0
    if prof is not None:
        stats = ((prof.get("bandwidth") or {}).get("stats") or {}).get("read_gbps") or {}
        probe = float(stats.get("spread") or 0.0) if isinstance(stats.get("spread"), (int, float)) else 0.0
        if spec.kernels is not None:
            probe = max(probe, spec.kernels.spread)
    u = tuple(math.hypot(m, probe) * (BUSY_WIDENING if busy else 1.0) for m in model)
    return (min(u[0], 2.0), min(u[1], 2.0))


def _speed(spec, basis, overrides) -> tuple[Any, Any, bool, str]:
    spec, basis = device_speed.with_overrides(spec, basis, overrides[0], overrides[1])
    if spec is None:
        return None, None, False, ""
    try:
        params, note, calibrated = device_speed.params_for_basis(spec.params_class or spec.backend, basis, spec.kernels)
    except (KeyError, TypeError, ValueError):
        raise ProfileError("the calibration in the saved profile is malformed; run `fitcheck calibrate` again") from None
    parts = [basis.get("bandwidth"), basis.get("compute"), f"parameters: {note}"]
    return spec, params, calibrated, "; ".join(p for p in parts if p)


def _this_backend(overrides, prof: dict[str, Any] | None) -> None:
    """This machine is measured through its CPU; a GPU beside it is named as a database device."""
    from fitcheck.device.backends import check_backend, check_runs

    if overrides[2] is not None:
        check_runs("this device", ("cpu",), check_backend(overrides[2]))
    cpu = (prof or {}).get("cpu") if isinstance((prof or {}).get("cpu"), dict) else {}
    cores = cpu.get("logical_cores") or cpu.get("cores") or os.cpu_count()
    device_speed.check_threads(overrides[3], cores if isinstance(cores, int) else None, "this device")


def _this(prof: dict[str, Any] | None, where: str, overrides) -> Target:
    """This machine: from a profile when there is one, else a live memory probe (and no speed unless given)."""
    warnings: list[str] = []
    cpu = prof.get("cpu") if isinstance((prof or {}).get("cpu"), dict) else {}
    if prof is None:
        from probes import memory

        mem = memory.probe()
        usable, rule = profile_usable({"memory": mem})
        rule = f"live memory probe: {rule}"
        spec, basis, read = None, {}, None
        warnings.append("no saved profile: speed needs `fitcheck probe` (or --bandwidth-gbps)")
        label = "this device (not probed yet)"
    else:
        usable, rule = profile_usable(prof)
        rule = f"{where}: {rule}"
        warnings += _profile_warnings(prof)
        label = f"this device ({cpu.get('model') or 'unknown CPU'}, probed {str(prof.get('created', '?'))[:10]})"
        try:
            spec, basis = device_speed.from_profile(prof)
            read = spec.bw_gbps
        except NoSpeedError as e:
            spec, basis, read = None, {}, None
            warnings.append(str(e))
    _this_backend(overrides, prof)
    if spec is not None and overrides[3] is not None:
        spec, basis = device_speed.at_threads(spec, basis, prof, overrides[3])
    sspec, params, calibrated, note = _speed(spec, basis, overrides)
    if sspec is not None and not calibrated and sspec.backend == "cpu":
        warnings.append("speed not calibrated on this device: `fitcheck calibrate` runs llama.cpp once to fix it")
    busy = any(_shaky(w) for w in warnings)
    from fitcheck.device.paging_rules import profile_rule

    return Target(label, usable, rule, sspec, params, calibrated, note or "no speed inputs", read, tuple(warnings),
                  basis={"source": "profile", "created": (prof or {}).get("created"), "cpu": cpu.get("model")},
                  uncertainty=uncertainty(sspec, params, calibrated, basis, prof, busy), paging=profile_rule(prof or {}))


def device_target(dev, ram_gb: int, entitlement: bool = False, overrides=(None, None, None, None),
                  host: HostSide | None = None, ram_note: str = "") -> Target:
    """A database device with one RAM option as a Target (the forecast evaluates each device this way)."""
    from fitcheck.device.memory_rules import device_usable_bytes, os_of

    usable, rule = device_usable_bytes(dev, ram_gb, entitlement)
    warnings: list[str] = []
    try:
        spec, basis = device_speed.from_device(dev, overrides[2], overrides[3])
    except NoSpeedError as e:
        spec, basis = None, {}
        if overrides[0] is None:
            warnings.append(str(e))
    sspec, params, calibrated, note = _speed(spec, basis, overrides)
    alt = Alternatives()
    if dev.kind == "gpu" and host is not None:
        alt = Alternatives(host=host)
    elif os_of(dev) in ("iOS", "iPadOS") and not entitlement:
        ent, ent_rule = device_usable_bytes(dev, ram_gb, entitlement=True)
        alt = Alternatives(entitlement_usable_bytes=ent, entitlement_rule=ent_rule)
    facts = {"source": "database", "id": dev.id, "name": dev.name, "kind": dev.kind, "os": os_of(dev),
             "ram_gb": ram_gb, "ram_choice": ram_note or f"{ram_gb} GB", "ram_options_gb": list(dev.ram_options_gb),
             "bw_gbps": dev.bw_gbps, "fp16_tflops": dev.fp16_tflops, "fp32_tflops": dev.fp32_tflops,
             "release": dev.release or (str(dev.year) if dev.year else ""), "backends": list(dev.backends),
             "cpu": dev.cpu, "cpu_isa": dev.cpu_isa, "npu": dev.npu,
             "device_source": dev.source, "device_verification": dev.verification}
    from fitcheck.device.paging_rules import device_rule

    return Target(f"{dev.name}, {ram_gb} GB", usable, rule, sspec, params, calibrated, note or "no speed inputs", None,
                  tuple(warnings), alt, facts, uncertainty(sspec, params, False, basis, None, False),
                  paging=device_rule(dev, os_of(dev)))


def _database(name: str, entitlement: bool, overrides, host_memory_gb: float | None,
              memory_gb: float | None = None) -> Target:
    from fitcheck.device.names import DeviceChoice, resolve

    choice = resolve(name)
    if choice.ram_gb is None:
        if memory_gb is None:
            raise UsageError(f"{choice.device.name} has no RAM size in the database; give --memory-gb")
        choice = DeviceChoice(choice.device, max(1, round(memory_gb)), f"{memory_gb:g} GB (--memory-gb)")
    host = _host_side(host_memory_gb) if choice.device.kind == "gpu" else None
    return device_target(choice.device, choice.ram_gb, entitlement, overrides, host, choice.ram_note)


def _host_side(host_memory_gb: float | None) -> HostSide:
    """System RAM beside a discrete GPU: as given, else this machine's saved probe."""
    from fitcheck.device import profile

    try:
        prof = profile.load()
    except ProfileError:
        prof = None
    read = None
    if prof is not None:
        try:
            read = device_speed.from_profile(prof)[0].bw_gbps
        except NoSpeedError:
            pass
    given = gb_option(host_memory_gb, "--host-memory-gb")
    if given is not None:
        return HostSide(given, read, f"--host-memory-gb {host_memory_gb:g}")
    if prof is not None:
        try:
            return HostSide(profile_usable(prof)[0], read, "this machine's saved probe")
        except ProfileError:
            pass
    return HostSide(None, None, "unknown (give --host-memory-gb)")


def resolve_target(device: str = "this", *, memory_gb: float | None = None, entitlement: bool = False,
                   bandwidth_gbps: float | None = None, tflops: float | None = None, backend: str | None = None,
                   host_memory_gb: float | None = None, profile: dict[str, Any] | None = None,
                   threads: int | None = None) -> Target:
    """The device as one Target. `profile` is a profile already in hand for 'this' (the main job's)."""
    from fitcheck.device import profile as prof_mod

    overrides = (bandwidth_gbps, tflops, backend, threads)
    name = (device or "this").strip()
    if name.lower() == "this":
        if profile is None:
            try:
                profile = prof_mod.load()
            except NoProfileError:
                profile = None
        target = _this(profile, "saved profile", overrides)
    elif name.lower().endswith(".json"):
        target = _this(prof_mod.load(Path(name)), f"profile {Path(name).name}", overrides)
    else:
        target = _database(name, entitlement, overrides, host_memory_gb, memory_gb)
    given = gb_option(memory_gb, "--memory-gb")
    if given is not None:
        from dataclasses import replace

        target = replace(target, usable_bytes=given, memory_rule=f"--memory-gb {memory_gb:g} (GB, taken as usable)",
                         alternatives=Alternatives())
    return target

