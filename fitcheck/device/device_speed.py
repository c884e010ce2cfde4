"""A device's speed-model inputs: from a probed profile or a device_db row, the fitted class parameters.

The parameters per backend class live in device_db/speed_params.json (fitted
by `fitcheck refit`, fitcheck/refit.py, provenance kept); a calibration stored in
the profile replaces them for this device.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fitcheck.device.backends import (BACKENDS, check_backend, check_runs, cpu_compute, default_threads, gpu_arch,
                                      n_cores)
from fitcheck.errors import NoSpeedError, UsageError
from fitcheck.estimator.speed import (KERNEL_CLASSES, BackendParams, CpuKernelParams, CpuKernels, DeviceSpeedSpec,
                                      arch_factor, params_from_dict)

# classes without fitted parameters borrow another's (said in the note): ROCm runs llama.cpp's CUDA kernels
# through HIP; SYCL, Intel's GPUs, Vulkan's; MLX is Apple's Metal; MLC compiles to the platform's GPU API
BORROW = {"rocm": "vulkan", "sycl": "vulkan", "mlx": "metal", "mlc": "metal"}
FALLBACK_BACKEND = "cpu"


def param_class(backend: str, runs: tuple[str, ...] = (), table: dict | None = None) -> str:
    """The one place that decides whose fitted parameters a backend uses on a device that runs `runs` (the estimate,
    the backtest and the fit all ask here). A fitted class is its own; MLC compiles (TVM) to the platform's own GPU
    API: Metal on Apple, CUDA on NVIDIA, OpenCL on Adreno, Vulkan elsewhere (Mali, PowerVR); ROCm and MLX borrow
    (BORROW); anything else the CPU class's."""
    table = table if table is not None else fitted_params()["backends"]
    if backend in table:
        return backend
    if backend == "mlc":
        key = next((b for b in ("metal", "cuda", "opencl", "vulkan") if b in runs), "vulkan")
    else:
        key = BORROW.get(backend, backend)
    return key if key in table else FALLBACK_BACKEND


@lru_cache(maxsize=1)
def fitted_params() -> dict[str, Any]:
    return json.loads(files("device_db").joinpath("speed_params.json").read_text())


def backend_params(backend: str, params: dict | None = None, runs: tuple[str, ...] = ()) -> BackendParams:
    """A class's parameters; a class that leaves some weight types to the CPU carries the CPU class's too."""
    table = (params or fitted_params())["backends"]
    p = params_from_dict(table[param_class(backend, runs, table)])
    return replace(p, cpu=params_from_dict(table["cpu"])) if (p.cpu_types or p.cpu_rows_over) and "cpu" in table else p


def params_for(backend: str) -> tuple[BackendParams, str]:
    """The class's fitted parameters and a note saying which were used."""
    table = fitted_params()["backends"]
    key = param_class(backend)
    note = f"{backend}: {table[key].get('source', '')}" if key == backend else \
        f"no fitted parameters for {backend!r}; the {key} class is used"
    return backend_params(key), note


def _ok(section: Any) -> dict[str, Any] | None:
    """A probe section that measured (a failed probe saves {"status": "error", ...})."""
    return section if isinstance(section, dict) and section.get("status", "ok") == "ok" else None


def _positive(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e7 else None


def kernels_from_profile(prof: dict[str, Any]) -> CpuKernels | None:
    """The llama.cpp kernel probe's rates, when it ran and every rate it reports is a positive number."""
    k = _ok(prof.get("kernels"))
    rates = (k or {}).get("rates")
    if not isinstance(rates, dict) or not isinstance(k.get("threads"), int) or k["threads"] < 1:
        return None
    tg, pp, cvs, tg_u, pp_u = {}, {}, [], {}, {}
    rate = lambda d, key: (d.get(key) if isinstance(d, dict) and isinstance(d.get(key), (int, float))  # noqa: E731
                           and 0 < d[key] < 1e16 else None)
    for c in KERNEL_CLASSES:
        r = rates.get(c)
        if not isinstance(r, dict):
            continue
        t_rate, p_rate = rate(r, "tg_elems_per_s"), rate(r, "pp_elems_per_s")
        if t_rate and p_rate:
            tg[c], pp[c] = float(t_rate), float(p_rate)
            cvs += [v for v in (r.get("tg_cv"), r.get("pp_cv")) if _positive(v)]
            u = r.get("unrepacked")
            if rate(u, "tg_elems_per_s") and rate(u, "pp_elems_per_s"):
                tg_u[c], pp_u[c] = float(u["tg_elems_per_s"]), float(u["pp_elems_per_s"])
    if not tg:
        return None
    fixed = k.get("fixed_costs") if isinstance(k.get("fixed_costs"), dict) else {}
    per_token, per_layer = (v if isinstance(v, (int, float)) and 0 <= v < 1 else 0.0
                            for v in (fixed.get("per_token_s"), fixed.get("per_layer_s")))
    return CpuKernels(k["threads"], tg, pp, bool(k.get("repack", True)), max(cvs) if cvs else 0.0, per_token, per_layer,
                      tg_u, pp_u)


def bandwidth_at(bw: dict[str, Any], threads: int | None) -> float | None:
    """Read bandwidth at the thread count llama.cpp uses (the probe's thread scaling), else its best."""
    scaling = bw.get("thread_scaling_read_gbps")
    if threads and isinstance(scaling, dict):
        v = _positive(scaling.get(str(threads)))
        if v:
            return v
    return _positive(bw.get("read_gbps"))


def from_profile(prof: dict[str, Any]) -> tuple[DeviceSpeedSpec, dict[str, Any]]:
    bw, comp, disk = _ok(prof.get("bandwidth")), _ok(prof.get("compute")) or {}, _ok(prof.get("disk")) or {}
    kernels = kernels_from_profile(prof)
    read = bandwidth_at(bw or {}, kernels.threads if kernels else None)
    if read is None:
        raise NoSpeedError("the saved profile has no bandwidth measurement; run `fitcheck probe` again")
    gflops = _positive(comp.get("fp32_gflops"))
    cpu = _ok(prof.get("cpu")) or {}
    n = kernels.threads if kernels else int(_positive(cpu.get("usable_cores")) or _positive(cpu.get("logical_cores")) or 0)
    spec = DeviceSpeedSpec(backend="cpu", bw_gbps=read, peak_tflops=gflops / 1000 if gflops else None,
                           disk_gbps=_positive(disk.get("read_gbps")), name="this",
                           flops_kind="fp32 GEMM (numpy, probed)", kernels=kernels, threads=n)
    threads = f" at {kernels.threads} thread{'s' if kernels.threads != 1 else ''}" if kernels else ""
    basis = {"bandwidth": f"probed read {read:.1f} GB/s{threads} ({bw.get('method')})",
             "compute": (f"llama.cpp's own kernels, probed ({', '.join(f'{c} {v / 1e9:.0f}' for c, v in kernels.tg_elems_per_s.items())}"
                         f" G weights/s decode{'; repacked' if kernels.repack else ''})") if kernels else
                        (f"probed fp32 GEMM {gflops:.0f} GFLOP/s (no kernel probe: run `fitcheck probe`)" if gflops else "not probed"),
             "backend": "cpu (llama.cpp CPU)"}
    cal = prof.get("calibration")
    if isinstance(cal, dict) and isinstance(cal.get("params"), dict):
        basis["calibration"] = {"created": cal.get("created"), "source": cal.get("source"), "params": cal["params"],
                                "stale": cal.get("stale"), "uncertainty": cal.get("factors", {}).get("rms_log_error"),
                                "missed_own_run": cal.get("factors", {}).get("missed_own_run")}
    return spec, basis


PHONE_SOC_FAMILIES = ("Snapdragon", "Dimensity", "Tensor", "Exynos", "Apple A")


def has_dot_product(isa: str) -> bool:
    """Int8 dot products llama.cpp's quantized CPU kernels use: Arm dotprod/i8mm, x86 AVX2 (maddubs), VNNI, AMX.
    An ISA not listed is taken to have them (most CPUs since 2018 do)."""
    words = set(isa.lower().split())
    return not words or bool(words & {"dotprod", "i8mm", "avx2", "avx512", "vnni", "avx-vnni", "amx", "sve", "sve2"})


def _cpu_flops() -> dict[str, float]:
    import device_db

    return {k: c.fp32_flops_per_cycle for k, c in device_db.cpu_cores().items()}


def check_threads(threads: int | None, cores: int | None, where: str) -> None:
    if threads is None:
        return
    if threads <= 0:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    if cores and threads > cores:
        raise UsageError(f"--threads {threads}: {where} has {cores} cores")


def htp_rate(version: int) -> tuple[float, str]:
    """A Hexagon HTP's matrix rate in units of the measured v73, and how it was found.

    Qualcomm publishes no FLOPS, only each generation's claimed NPU gain over the one before
    (device_db/npu_generations.csv), for its own INT8 stack. llama.cpp's HMX path dequantizes the weights to FP16
    on the HVX units first, so half of the claimed gain (in log) is taken: an answer within the square root of the
    claim of both "as claimed" and "no faster"."""
    from device_db import npu_generations

    gens, claimed, v, seen = npu_generations(), 1.0, version, set()
    while (g := gens.get(("hexagon", v))) is not None and g.previous is not None and v not in seen:
        seen.add(v)
        claimed, v = claimed * g.claimed_vs_previous, g.previous
    if v != 73:
        return 1.0, f"rated as the measured v73 (no claimed gain known for v{version})"
    if version == 73:
        return 1.0, "the measured v73"
    return claimed ** 0.5, (f"{claimed ** 0.5:.2f}x the measured v73 (Qualcomm claims {claimed:.2f}x for its INT8 NPU "
                            f"stack; half of it in log taken for llama.cpp's FP16 HMX path, UNVERIFIED)")


def _threads(dev, threads: int | None) -> int:
    """The CPU threads a run uses: as asked, else the usual app's count for the device (0: no CPU known)."""
    phone_soc = dev.kind == "chip" and dev.family in PHONE_SOC_FAMILIES  # asked by SoC name: a phone's app
    return threads or (default_threads(dev.cpu, "phone" if phone_soc else dev.kind) if dev.cpu else 0)


def _compute(dev, backend: str, threads: int | None) -> tuple[float | None, str, str]:
    """(peak the class's parameters were fitted against, its kind, how it was found) for a device and backend."""
    if backend == "cpu":
        cc = cpu_compute(dev.cpu, _threads(dev, threads), _cpu_flops()) if dev.cpu else None
        if cc is None:
            return None, "", f"CPU cores unknown ({dev.cpu or 'no CPU in the database'})"
        return cc.tflops, f"CPU fp32 FMA peak at {cc.threads} threads", cc.note
    if backend == "hexagon":
        m = re.search(r"hexagon v(\d+)", dev.npu.lower())
        if not m:
            return None, "", f"no Hexagon NPU ({dev.npu or 'none listed'})"
        rate, how = htp_rate(int(m.group(1)))
        return rate, "Hexagon HTP, v73 units", f"{dev.npu}, {how}"
    apple = dev.family.startswith("Apple")
    # Apple GPUs run fp16 at the fp32 rate; elsewhere the non-tensor fp32 figure is the one known for every card
    tflops = (dev.fp16_tflops or dev.fp32_tflops) if apple else (dev.fp32_tflops or dev.fp16_tflops)
    kind = "fp16 GPU" if apple and dev.fp16_tflops else "fp32 GPU (non-tensor)"
    return tflops, kind, f"{tflops:g} TFLOPS {kind}" if tflops else "GPU FLOPS unknown"


def at_threads(spec: DeviceSpeedSpec, basis: dict, prof: dict[str, Any] | None, threads: int
               ) -> tuple[DeviceSpeedSpec, dict]:
    """This machine at --threads N: the probe's bandwidth at N threads, kernel rates scaled from the probe's count
    (llama.cpp's matrix products split across threads; a core more adds its own rate)."""
    bw = bandwidth_at(_ok((prof or {}).get("bandwidth")) or {}, threads) or spec.bw_gbps
    k = spec.kernels
    if k is not None and threads != k.threads:
        f = threads / k.threads
        scaled = lambda d: {c: v * f for c, v in d.items()}  # noqa: E731
        k = replace(k, threads=threads, tg_elems_per_s=scaled(k.tg_elems_per_s), pp_elems_per_s=scaled(k.pp_elems_per_s),
                    tg_unrepacked=scaled(k.tg_unrepacked), pp_unrepacked=scaled(k.pp_unrepacked))
    basis = {**basis, "threads": f"{threads} (--threads; kernel rates scaled from the probe's {spec.kernels.threads})"
             if spec.kernels else f"{threads} (--threads)"}
    return replace(spec, bw_gbps=bw, kernels=k), basis


def from_device(dev, backend: str | None = None, threads: int | None = None) -> tuple[DeviceSpeedSpec, dict[str, Any]]:
    """A database device's speed inputs for one backend class (its default unless named)."""
    runs = dev.backends or (dev.backend,)
    b = check_backend(backend) if backend else runs[0]
    check_runs(dev.name, runs, b)
    check_threads(threads, n_cores(dev.cpu) or None, dev.name)
    if not dev.bw_gbps:
        raise NoSpeedError(f"{dev.name} has no memory bandwidth in the database; give --bandwidth-gbps")
    pc = param_class(b, runs)
    tflops, kind, how = _compute(dev, pc, threads)
    dot = b != "cpu" or has_dot_product(dev.cpu_isa)
    cpu_tflops = tflops if b == "cpu" else _compute(dev, "cpu", threads)[0]  # for the types a GPU/NPU leaves to it
    spec = DeviceSpeedSpec(backend=b, bw_gbps=dev.bw_gbps, peak_tflops=tflops, name=dev.id, flops_kind=kind,
                           dot_product=dot, cpu_tflops=cpu_tflops, cpu_dot_product=has_dot_product(dev.cpu_isa),
                           # the architecture picks the prefill factor of whichever class's parameters it runs on
                           params_class=pc, gpu_arch=gpu_arch(dev.name) if b not in ("cpu", "hexagon") else "",
                           threads=_threads(dev, threads))
    if not dot:
        how += f"; no int8 dot-product instructions ({dev.cpu_isa})"
    fac = arch_factor((fitted_params()["backends"].get(pc) or {}).get("pp_arch", {}), spec.gpu_arch)
    if fac != 1.0:
        how += f"; prefill x{fac:.2f} as fitted for {spec.gpu_arch} GPUs on {pc}"
    return spec, {"bandwidth": f"{dev.bw_gbps:g} GB/s peak ({dev.verification})",
                  "compute": how if tflops else f"{how}: compute term left out, decode reads high, no prefill",
                  "backend": f"{b}: {BACKENDS[b]}" + ("" if backend else f" (the default of {', '.join(runs)})")
                  + (f"; speed as the fitted {pc} class" if pc != b else "")}


def with_overrides(spec: DeviceSpeedSpec | None, basis: dict, bandwidth_gbps: float | None, tflops: float | None
                   ) -> tuple[DeviceSpeedSpec | None, dict]:
    """Apply --bandwidth-gbps / --tflops; bandwidth alone is enough to make a spec."""
    if bandwidth_gbps is not None:
        if not 0.01 <= bandwidth_gbps <= 1e5:  # 10 MB/s (an SD card) to 100 TB/s: past either end is a typo
            raise UsageError(f"--bandwidth-gbps must be between 0.01 and 100000 (GB/s), got {bandwidth_gbps:g}")
        spec = replace(spec, bw_gbps=bandwidth_gbps) if spec else DeviceSpeedSpec("cpu", bandwidth_gbps, None, name="given")
        basis["bandwidth"] = f"{bandwidth_gbps:g} GB/s (--bandwidth-gbps)"
    if spec is None:
        return None, basis
    if tflops is not None:
        if not 1e-4 <= tflops <= 1e5:  # 0.1 GFLOPS (a microcontroller) to 100 PFLOPS
            raise UsageError(f"--tflops must be between 0.0001 and 100000, got {tflops:g}")
        spec = replace(spec, peak_tflops=tflops, flops_kind="given")
        basis["compute"] = f"{tflops:g} TFLOPS (--tflops)"
    return spec, basis


def kernel_params(d: dict[str, Any] | None = None) -> tuple[CpuKernelParams, str]:
    """The CPU kernel model's carry-over factors: a calibration's, else the fitted ones."""
    src = d or fitted_params()["cpu_kernels"]
    pp_by, tg_by, bw_by = (src.get(k) if isinstance(src.get(k), dict) else {}
                           for k in ("pp_scale_by_class", "tg_scale_by_class", "bw_eff_by_class"))
    as_floats = lambda d: {str(c): float(v) for c, v in d.items()}  # noqa: E731
    # attention's per-score costs and batched gemm are fitted on depth and parallel runs, not by a calibration: the
    # shipped ones always apply
    shipped = fitted_params()["cpu_kernels"]
    return CpuKernelParams(float(src["bw_eff"]), float(src["tg_scale"]), float(src["pp_scale"]),
                           float(src.get("t_token_s", 0.0)), str(src.get("source", "")),
                           as_floats(pp_by), as_floats(tg_by), as_floats(bw_by), as_floats(shipped.get("score_macs", {})),
                           float(shipped.get("batch_half", 0.0))), str(src.get("source", ""))


def missed_note(factors: dict[str, Any]) -> str:
    """The line an answer carries when its calibration was stored although it missed its own runs."""
    m = factors.get("missed_own_run")
    if not isinstance(m, dict) or not isinstance(m.get("error"), (int, float)):
        return ""
    return (f"stored with --store-anyway although it misses its own {str(m.get('metric'))[:20]} on "
            f"{str(m.get('run'))[:60]} by {m['error']:+.0%}")


def params_for_basis(backend: str, basis: dict, kernels: CpuKernels | None = None
                     ) -> tuple[BackendParams | CpuKernelParams, str, bool]:
    """Calibrated parameters when the profile has them (and the backend is the CPU it was made on), else the class's.

    With measured llama.cpp kernels the CPU kernel model applies (its factors calibrated or fitted)."""
    cal = basis.get("calibration")
    stale = f"; the calibration is stale ({cal['stale']}): run `fitcheck calibrate`" if cal and cal.get("stale") else ""
    missed = (cal or {}).get("missed_own_run")
    said = f"; {missed_note({'missed_own_run': missed})}" if isinstance(missed, dict) else ""
    calibrated = bool(cal) and backend == "cpu" and not stale
    kernel_cal = calibrated and isinstance(cal["params"].get("kernel_model"), dict)
    if backend == "cpu" and kernels is not None:
        if kernel_cal:
            p, _ = kernel_params(cal["params"]["kernel_model"])
            return p, f"llama.cpp kernel model, calibrated on this device ({cal['source']}, {cal['created']}{said})", True
        p, src = kernel_params()
        return p, f"llama.cpp kernel model ({src}){stale}", False
    if calibrated and not kernel_cal:
        return params_from_dict(cal["params"]), f"calibrated on this device ({cal['source']}, {cal['created']}{said})", True
    params, note = params_for(backend)
    return params, note + stale, False
