"""The CPU kernel probe: a few seconds of llama.cpp's own kernels, per weight type, at the thread count it uses.

numpy's fp32 GEMM says little about how fast llama.cpp's quantized dot
products run: that depends on the ISA path it takes (AVX2, AVX-512 VNNI, AMX,
NEON dotprod / i8mm) and on whether it repacks weights for it. So `fitcheck
probe` runs llama.cpp itself on one small synthetic model per kernel class
(2 layers of a 2048-wide llama, 8k vocabulary: 107 M weights read per token)
and records the elements per second decode and prefill reach. Big models
are then predicted from these rates and the probed bandwidth
(fitcheck.estimator.speed, the CPU kernel model).

The probe models are written once into the cache (FITCHECK_CACHE, ~/.cache/fitcheck; checksummed);
runs use llama.cpp's defaults (weight repacking on), and repacking off after
a crash, as a user's llama.cpp would.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from fitcheck.errors import FitcheckError

# kernel class -> the GGML type its probe model is written in (fitcheck.estimator.speed.kernel_class maps the rest)
PROBE_TYPES = {"f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k": "Q4_K", "q6_k": "Q6_K"}


def probe_model(ggml_type: str):
    from fitcheck.calibration.synth import SynthModel

    return SynthModel(n_layer=2, n_embd=2048, n_head=16, n_head_kv=4, n_ff=5632, n_vocab=8000, weight_type=ggml_type,
                      name=f"kernel-{ggml_type.lower()}", seed=31)


def overhead_model(n_layer: int):
    """A tiny model whose decode time is nearly all llama.cpp's fixed costs (graph, threads, per-layer ops)."""
    from fitcheck.calibration.synth import SynthModel

    return SynthModel(n_layer=n_layer, n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_vocab=1000, weight_type="Q8_0",
                      name=f"overhead-{n_layer}", seed=33)


OVERHEAD_LAYERS = (1, 9)
UNREPACKED_CLASSES = ("q4_0", "q4_k")  # what llama.cpp's CPU backend repacks on x86 (AVX2/AVX-512) and Arm (i8mm)
UNSETTLED = 0.25  # a class whose two fastest decode rounds differ by more is reported as unsettled
ROUND_BUDGET_S = {True: 5.0, False: 30.0}  # quick: two rounds of every class on a quiet machine, `probe --quick` within ~12 s


def measure(threads: int, quick: bool = False, on_step: Callable[[str], None] | None = None,
            budget_s: float | None = None) -> dict[str, Any]:
    """Decode and prefill rates (weight elements per second) per kernel class; a profile section.

    All runs share one llama.cpp child (LlamaSession). Within `budget_s` (the quick probe's share of its time)
    rounds stop early, down to one; the unrepacked classes are skipped when no time is left, and the section
    says what was cut ("cut_short")."""
    from fitcheck.calibration.llama_run import LlamaSession

    t0 = time.perf_counter()
    rounds_s = min(ROUND_BUDGET_S[quick], budget_s) if budget_s is not None else ROUND_BUDGET_S[quick]
    with LlamaSession() as session:
        return _measure(session, threads, quick, on_step or (lambda s: None), t0, rounds_s, budget_s)


def _measure(session, threads, quick, step, t0, rounds_s, budget_s) -> dict[str, Any]:
    from fitcheck.calibration.calibrate import ensure_model
    from fitcheck.calibration.llama_run import RunSettings, run_llama
    from fitcheck.calibration.rounds import fastest_two_agree, in_rounds
    from fitcheck.paths import cache_dir

    folder = cache_dir() / "kernels"
    reps = 2 if quick else 4  # a round; at least two rounds unless the budget says otherwise
    state = {"repack": True, "crashed": None}
    cut: list[str] = []

    def run(path, n_prompt, n_gen, repack=None):
        on = state["repack"] if repack is None else repack
        res = run_llama(path, n_prompt=n_prompt, n_gen=n_gen, reps=reps, timeout_s=120, session=session,
                        settings=RunSettings(n_ctx=256, n_threads=threads, use_extra_bufts=on))
        if res.crashed_first:  # repacked kernels crashed (AMX on some CPUs): the rest run as the retry did
            state["crashed"], state["repack"] = res.crashed_first, False
        return res

    # fixed costs first: per token and per layer, from two tiny models that differ only in depth
    step("llama.cpp fixed costs")
    t_tiny = [1 / run(ensure_model(overhead_model(n), folder), 16, 64).generation_tps for n in OVERHEAD_LAYERS]
    per_layer = max((t_tiny[1] - t_tiny[0]) / (OVERHEAD_LAYERS[1] - OVERHEAD_LAYERS[0]), 0.0)
    per_token = max(t_tiny[0] - per_layer * OVERHEAD_LAYERS[0], 0.0)
    # rounds over every class, each keeping its fastest (fitcheck.calibration.rounds): a neighbour's burst halved one
    # run here (Q4_0 at 51 then 78 G weights/s minutes apart). Two rounds at least, settled on decode; under a hard
    # budget, as many as fit (one at least), and the spread says how far to trust them.
    def job(gtype: str):
        def one(rnd: int):
            step(f"llama.cpp kernels: {gtype}" + (f" (round {rnd + 1})" if rnd else ""))
            return run(ensure_model(probe_model(gtype), folder), 64, 32)
        return one

    seen = in_rounds([job(g) for g in PROBE_TYPES.values()],
                     lambda runs: fastest_two_agree([r.generation_tps for r in runs]),
                     rounds_s - (time.perf_counter() - t0), min_rounds=2, hard=budget_s is not None)
    if len(seen[0]) < 2:
        cut.append("one round only (the budget ran out): no spread across rounds")
    for cls, runs in zip(PROBE_TYPES, seen):  # a burst the rounds could not outlast: said, and the interval widens
        if len(runs) > 1 and not fastest_two_agree([r.generation_tps for r in runs], UNSETTLED):
            cut.append(f"{cls} decode rounds disagree ({', '.join(f'{r.generation_tps or 0:.1f}' for r in runs)} t/s; "
                       f"the fastest kept): a busy machine, speeds resting on {cls} are less certain")
    rates: dict[str, Any] = {}
    for cls, runs in zip(PROBE_TYPES, seen):
        tg = max(r.generation_tps or 0 for r in runs)
        pp = max(r.prompt_tps or 0 for r in runs)
        rates[cls] = {"type": PROBE_TYPES[cls], **_rates(cls, tg, pp, per_token, per_layer),
                      "tg_cv": _cv([r.generation_tps for r in runs], [r.generation_tps_std for r in runs]),
                      "pp_cv": _cv([r.prompt_tps for r in runs], [r.prompt_tps_std for r in runs]),
                      "rounds_tg_tps": [round(r.generation_tps or 0, 1) for r in runs]}
    if state["repack"]:  # an app may run llama.cpp with repacking off (LLMFarm-style): the classes it repacks, once
        for cls in UNREPACKED_CLASSES:
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                cut.append(f"{cls} without repacking not measured (the budget ran out)")
                continue
            step(f"llama.cpp kernels: {PROBE_TYPES[cls]}, repacking off")
            res = run(ensure_model(probe_model(PROBE_TYPES[cls]), folder), 64, 32, repack=False)
            rates[cls]["unrepacked"] = _rates(cls, res.generation_tps or 0, res.prompt_tps or 0, per_token, per_layer)
    return {"status": "ok", "threads": threads, "repack": state["repack"], "crashed_first": state["crashed"],
            "fixed_costs": {"per_token_s": per_token, "per_layer_s": per_layer},
            "probe_model": {"n_layer": 2, "n_embd": 2048, "n_ff": 5632, "n_vocab": 8000},
            "rates": rates, "rounds": len(seen[0]), "cut_short": cut, "elapsed_s": round(time.perf_counter() - t0, 2)}


def _rates(cls: str, tg: float, pp: float, per_token: float, per_layer: float) -> dict[str, float]:
    """Elements per second of one probe model's decode and prefill rates (t/s)."""
    from fitcheck.calibration.synth import spec_of
    from fitcheck.estimator.speed import active_weights

    elems = active_weights(spec_of(probe_model(PROBE_TYPES[cls])))[2]
    # the probe model's own fixed costs are not its kernels' work
    t_work = max(1 / tg - per_token - 2 * per_layer, 0.5 / tg) if tg else 0
    return {"tg_tps": round(tg, 2), "pp_tps": round(pp, 1), "tg_elems_per_s": elems / t_work if t_work else 0,
            "pp_elems_per_s": elems * pp}


def _cv(means, stds) -> float | None:
    """Relative spread: within a round (its repetitions) or across rounds, whichever is wider."""
    vals = [v for v in means if v]
    if not vals:
        return None
    mean = sum(vals) / len(vals)
    across = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 / mean if len(vals) > 1 else 0.0
    within = max(((sd or 0) / m for m, sd in zip(means, stds) if m), default=0.0)
    return round(max(across, within), 4)


QUICK_BUDGET_S = 17.0  # `probe --quick` ends within about this, whatever the load (the kernels take what is left)
KERNELS_MIN_S = 4.0  # ... but never less than this for the kernels: one round of every class


def probe_device(quick: bool = False, on_step: Callable[[str], None] | None = None,
                 kernel_step: Callable[[str], None] | None = None, disk_dir: str | None = None) -> dict[str, Any]:
    """Every probe, then llama.cpp's kernels: the whole profile. Quick: within QUICK_BUDGET_S, the kernel probe's
    rounds cut to what is left of it (the profile says what was cut)."""
    from fitcheck.device import profile as prof_mod

    t0 = time.perf_counter()
    prof = prof_mod.collect(quick=quick, on_step=on_step, disk_dir=disk_dir)
    budget = max(QUICK_BUDGET_S - (time.perf_counter() - t0), KERNELS_MIN_S) if quick else None
    add_to_profile(prof, quick, kernel_step, budget)
    prof["durations_s"]["total"] = round(time.perf_counter() - t0, 2)
    return prof


def add_to_profile(prof: dict[str, Any], quick: bool = False, on_step=None, budget_s: float | None = None) -> dict[str, Any]:
    """Measure the kernels into prof["kernels"]; a failure is recorded, never fatal (as for every probe)."""
    from fitcheck.calibration.llama_run import default_threads

    try:
        prof["kernels"] = measure(default_threads(), quick, on_step, budget_s)
        for c in prof["kernels"].get("cut_short", []):
            prof.setdefault("warnings", []).append(f"kernel probe: {c}")
    except FitcheckError as e:
        prof["kernels"] = {"status": "error", "reason": str(e)}
    except (OSError, ValueError) as e:
        prof["kernels"] = {"status": "error", "reason": f"{type(e).__name__}: {e}"}
    return prof


def fit_kernel_factors(runs, dev, base=None) -> tuple[Any, float]:
    """The CPU kernel model's three carry-over factors (bandwidth efficiency, decode and prefill scale) on real runs
    [(ModelSpec, prompt_tps, generation_tps, n_prompt, depth)] of this machine: least squares on log errors (scipy).
    Returns the factors (CpuKernelParams; `base`'s as the start) and the rms log error."""
    import math

    import numpy as np
    from scipy.optimize import least_squares

    from fitcheck.estimator.speed import CpuKernelParams, estimate_speed

    def resid(x):
        kp = CpuKernelParams(*x)
        out = []
        for spec, pp_tps, tg_tps, n_prompt, depth in runs:
            e = estimate_speed(spec, dev, kp, n_prompt=n_prompt, depth=depth)
            out += [math.log(e.decode_tps / tg_tps), math.log(e.prefill_tps / pp_tps)]
        return np.array(out)

    x0 = [base.bw_eff, base.tg_scale, base.pp_scale] if base is not None else [0.9, 1.0, 0.7]
    sol = least_squares(resid, x0=x0, bounds=([0.3, 0.3, 0.2], [1.2, 3.0, 2.0]))
    return CpuKernelParams(*[float(v) for v in sol.x]), float(math.sqrt((sol.fun ** 2).mean()))
