"""Calibration: a short real llama.cpp run turns the speed model into this device's forecast.

With no model given, fitcheck writes (once, cached and checksummed) three
synthetic random-weight llamas: a Q4_K_M mix at >= 1 GiB and >= 16x the
last-level cache, Q8_0 at half that and Q4_0 at a quarter (all >= 4x the
cache: a model that fits in cache decodes from it and overstates bandwidth,
all within a safe share of available memory). Each runs in a child process
(llama.cpp's defaults first; on a crash, again with weight repacking off), in
rounds until each model's fastest two agree. Where the profile has llama.cpp's
kernel rates, a bounded least-squares fit (scipy) sets the kernel model's
bandwidth, decode and prefill factors, then per weight class; otherwise the
class model's bandwidth efficiency, compute scale and prefill efficiency. A
fit that misses its own runs by more than 10 % is not stored.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from fitcheck.errors import CalibrationError
from fitcheck.calibration.llama_run import RunSettings, run_llama
from fitcheck.calibration.rounds import fastest_two_agree, in_rounds, spread
from fitcheck.device.device_speed import missed_note
from fitcheck.model.model_spec import ModelSpec
from fitcheck.estimator.speed import BackendParams, DeviceSpeedSpec, active_weights, estimate_speed, weight_class

MODEL_LLC_MULTIPLE = 4  # calibration weights at least this many times the last-level cache (decode streams them)
MIN_BYTES = 256 << 20
MAX_AVAILABLE_SHARE = 0.25
MEMORY_MARGIN = 0.8  # refuse a run whose reserved memory exceeds this share of usable memory




@dataclass(frozen=True)
class CalibrationRun:
    model: str
    path: str
    weight_type: str
    weights_bytes: int
    n_params: int
    n_prompt: int
    n_gen: int
    n_threads: int
    prompt_tps: float | None
    prompt_tps_std: float | None
    generation_tps: float | None
    generation_tps_std: float | None
    ttft_s: float | None
    load_s: float | None
    peak_memory_bytes: int | None
    predicted_decode_tps: float | None = None
    predicted_prefill_tps: float | None = None


@dataclass(frozen=True)
class Calibration:
    created: str
    source: str  # synthetic | model | llama-bench
    runs: tuple[CalibrationRun, ...]
    params: dict[str, Any]
    factors: dict[str, Any]
    system_info: str = ""
    llama_cpp_python: str = ""
    crashed_first: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runs"] = [asdict(r) for r in self.runs]
        d["notes"] = list(self.notes)
        return d


LARGEST_LLC_MULTIPLE = 16  # the largest calibration model: at least 16x the last-level cache ...
LARGEST_MIN_BYTES = 1 << 30  # ... and at least 1 GiB, so decode streams from RAM as a real model's does
# (weight type, share of the largest size): the classes the advice ranks, at three sizes
CALIBRATION_SET = (("Q4_K_M", 1.0), ("Q8_0", 0.5), ("Q4_0", 0.25))


def calibration_shapes(llc_bytes: int | None, available_bytes: int):
    """Three synthetic llamas at three sizes: a Q4_K_M mix (the largest), Q8_0 at half, Q4_0 at a quarter."""
    from fitcheck.calibration.synth import SynthModel, spec_of

    largest = max(LARGEST_LLC_MULTIPLE * (llc_bytes or 0), LARGEST_MIN_BYTES)
    cap = int(available_bytes * MAX_AVAILABLE_SHARE)
    if largest > cap:
        raise CalibrationError(
            f"the largest calibration model ({largest >> 20} MiB: 1 GiB and 16x the {(llc_bytes or 0) >> 20} MiB cache) "
            f"needs more than {MAX_AVAILABLE_SHARE:.0%} of the {available_bytes >> 20} MiB available; free memory or use --model")
    out = []
    for i, (quant, share) in enumerate(CALIBRATION_SET):
        over = {"attn_v": "Q6_K", "ffn_down": "Q6_K"} if quant == "Q4_K_M" else {}
        base = SynthModel(n_layer=1, n_embd=2048, n_head=16, n_head_kv=4, n_ff=5632, n_vocab=32000,
                          weight_type=quant.removesuffix("_M"), type_overrides=over, seed=101 + i,
                          name=f"calib-{quant.lower()}")
        per_layer = spec_of(replace(base, n_layer=2)).weights_bytes - spec_of(base).weights_bytes
        fixed = spec_of(base).weights_bytes - per_layer
        target = max(largest * share, MODEL_LLC_MULTIPLE * (llc_bytes or 0), MIN_BYTES)
        out.append(replace(base, n_layer=max(2, -(-(int(target) - fixed) // per_layer))))
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _writer_alive(tmp: Path) -> bool:
    try:
        pid = int(tmp.name.split(".")[-3])
        os.kill(pid, 0)
        return True
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True


def ensure_model(model, folder: Path) -> Path:
    """The cached GGUF for `model`, (re)written when missing or when its checksum does not match."""
    from fitcheck.calibration.synth import write_synthetic

    key = hashlib.sha256(json.dumps(asdict(model), sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = folder / f"{model.name}-{model.n_layer}x{model.n_embd}-{key}.gguf"
    sums = path.with_suffix(".sha256")
    if path.exists() and sums.exists() and sums.read_text().strip() == _sha256(path):
        return path
    from fitcheck.calibration.llama_run import signals_raise

    from fitcheck.calibration.synth import spec_of

    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.tmp.gguf"):  # left by a run that was killed outright (its writer is gone)
            if not _writer_alive(stale):
                stale.unlink(missing_ok=True)
        st = os.statvfs(folder)
    except OSError as e:
        raise CalibrationError(f"cannot use the model cache {folder}: {e.strerror or e} (set FITCHECK_CACHE)") from None
    need, free = spec_of(model).weights_bytes + (8 << 20), st.f_bavail * st.f_frsize
    if need > free:
        raise CalibrationError(f"no room for the {model.name} calibration model in {folder}: it needs {need >> 20} MiB, "
                               f"{free >> 20} MiB are free (free some, or set FITCHECK_CACHE)")
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.gguf")  # the cache is shared: one temp file per writer
    with signals_raise():
        try:
            write_synthetic(tmp, model)
            with open(tmp, "rb+") as f:  # on disk before any run: writeback must not compete with the measurement
                os.fsync(f.fileno())
            os.replace(tmp, path)
            sums.write_text(_sha256(path) + "\n")
        except OSError as e:  # a disk that fills or goes read-only while writing (the writer's own errors too)
            raise CalibrationError(f"cannot write the {model.name} calibration model in {folder}: "
                                   f"{e.strerror or e}") from None
        finally:  # interrupted or failed: no half-written model stays behind
            tmp.unlink(missing_ok=True)
    return path


def solve_params(base: BackendParams, runs: list[tuple[ModelSpec, CalibrationRun]], dev: DeviceSpeedSpec) -> tuple[BackendParams, dict]:
    """This device's parameters from measured runs (the fitted class values are the starting point)."""
    bw = dev.bw_gbps * 1e9
    factors: dict[str, Any] = {}
    decode = [(s, r) for s, r in runs if r.generation_tps]
    bw_eff = base.bw_eff
    if len(decode) >= 2:
        ordered = sorted(decode, key=lambda sr: active_weights(sr[0])[0])
        (s1, r1), (s2, r2) = ordered[0], ordered[-1]
        b1, b2 = active_weights(s1)[0], active_weights(s2)[0]
        dt_s = 1 / r2.generation_tps - 1 / r1.generation_tps
        if b2 > b1 and dt_s > 0:
            bw_eff = min(1.0, max(0.1, (b2 - b1) / (bw * dt_s)))
        else:
            factors["bw_eff_note"] = "decode times did not grow with bytes (noise); class bandwidth efficiency kept"
    # the rest of each decode time (compute + per-layer cost) sets one scale on both
    scales = []
    probe_params = replace(base, bw_eff=bw_eff)
    for s, r in decode:
        est = estimate_speed(s, dev, probe_params)
        rest_pred = est.decode_breakdown_s["compute"] + est.decode_breakdown_s["fixed"]
        rest_meas = 1 / r.generation_tps - est.decode_breakdown_s["bandwidth"]
        if rest_pred > 0 and rest_meas > 0:
            scales.append(rest_meas / rest_pred)
    scale = sum(scales) / len(scales) if scales else 1.0
    fpw = {c: v * scale for c, v in base.flops_per_weight.items()}
    params = replace(base, bw_eff=bw_eff, flops_per_weight=fpw, t_layer_s=base.t_layer_s * scale)
    # prefill efficiency per measured class; unmeasured classes keep their fitted ratio to a measured one
    pp = dict(base.pp_eff)
    measured = {}
    for s, r in runs:
        if not r.prompt_tps:
            continue
        cls = weight_class(_dominant_type(s))
        est = estimate_speed(s, dev, replace(params, pp_eff=pp), n_prompt=r.n_prompt)
        measured[cls] = pp.get(cls, pp["q4"]) * r.prompt_tps / est.prefill_tps
    if measured:
        ratio = sum(measured[c] / base.pp_eff.get(c, base.pp_eff["q4"]) for c in measured) / len(measured)
        pp = {c: measured.get(c, v * ratio) for c, v in {**base.pp_eff, "kq": base.pp_eff.get("kq", base.pp_eff["q4"])}.items()}
    factors.update({"bw_eff": round(bw_eff, 4), "compute_scale": round(scale, 4),
                    "pp_eff": {c: round(v, 4) for c, v in pp.items()},
                    "decode_bytes_per_s_achieved": [round(active_weights(s)[0] * r.generation_tps) for s, r in decode],
                    "probe_bw_gbps": dev.bw_gbps, "probe_tflops": dev.peak_tflops})
    return replace(params, pp_eff=pp, source="calibrated on this device"), factors


REPRODUCE_WITHIN = 0.10  # a calibration that misses its own runs by more is not stored
REMEASURE = 3  # ... after measuring the run it missed again this many times


class MissedOwnRun(CalibrationError):
    """A fit that misses its own runs: not stored. `runs` holds what was measured (written with --llama-bench-out)."""

    def __init__(self, run: str, metric: str, error: float):
        self.run, self.metric, self.error = run, metric, error
        self.runs: tuple[CalibrationRun, ...] = ()
        super().__init__(f"not stored: the fitted model misses its own {metric} on {run} by {error:+.0%} (more than "
                         f"{REPRODUCE_WITHIN:.0%}); the machine may be busy or the runs too noisy; try again, or "
                         f"--store-anyway to keep it marked as such")



def best_of(a: CalibrationRun, b: CalibrationRun) -> CalibrationRun:
    """Two measurements of one run: the faster of each (noise on a shared machine only ever slows a run)."""
    best = lambda x, y: max((v for v in (x, y) if v), default=None)  # noqa: E731
    return replace(a, generation_tps=best(a.generation_tps, b.generation_tps), prompt_tps=best(a.prompt_tps, b.prompt_tps))


ROUND_BUDGET_S = {True: 40.0, False: 300.0}  # quick calibration stays within a minute with its probe


def _settled(rounds: list[CalibrationRun]) -> bool:
    """The two fastest rounds of one model agree, for decode and for prefill."""
    return fastest_two_agree([r.generation_tps for r in rounds]) and fastest_two_agree([r.prompt_tps for r in rounds])


def _kernel_residuals(kp, runs, dev) -> list[tuple[str, str, float]]:
    """(run, metric, log error) of the kernel model with factors kp on each measured rate."""
    out = []
    for s, r in runs:
        est = estimate_speed(s, dev, kp, n_prompt=r.n_prompt or 512, depth=(r.n_gen or 0) // 2)
        if r.generation_tps:
            out.append((r.model, "decode", math.log(est.decode_tps / r.generation_tps)))
        if r.prompt_tps and est.prefill_tps:
            out.append((r.model, "prefill", math.log(est.prefill_tps / r.prompt_tps)))
    return out


CLASS_RANGE = 1.5  # how far one weight class's factor may sit from the fit over all runs
CLASS_WEIGHT = 0.5  # ... and how much of its own run's deviation it takes
# ... once the runs were measured again and the fit still missed: more, not all (all of it moved a held-out
# forecast 20 % between consecutive calibrations here; 3/4 reproduces a 26 % class deviation within 10 %)
INSIST_CLASS_WEIGHT = 0.75
MAX_STREAM_EFF = 1.1  # weights stream at most this share of the probed read bandwidth (the models are >= 4x the LLC)
PRIOR_LOG_SD = 0.5  # how far (log) a calibration may move a factor before the data must insist


def _fit_kernel_model(base, runs, dev, class_weight: float = CLASS_WEIGHT):
    import numpy as np
    from scipy.optimize import least_squares

    x0 = [base.bw_eff, base.tg_scale, base.pp_scale]

    def resid(x):
        data = [e for _, _, e in _kernel_residuals(replace(base, bw_eff=x[0], tg_scale=x[1], pp_scale=x[2]), runs, dev)]
        # a weak pull toward the fitted factors: bandwidth and compute can trade off on noisy runs, and three
        # consecutive calibrations must agree
        prior = [math.log(v / v0) / PRIOR_LOG_SD for v, v0 in zip(x, x0)]
        return np.array(data + prior)

    sol = least_squares(resid, x0=x0, bounds=([0.2, 0.2, 0.1], [1.5, 5.0, 5.0]))
    kp = replace(base, bw_eff=float(sol.x[0]), tg_scale=float(sol.x[1]), pp_scale=float(sol.x[2]),
                 source="calibrated on this device", pp_scale_by_class={}, tg_scale_by_class={}, bw_eff_by_class={})
    # kernels differ by class (repacked Q4_0, K-quants): each measured class keeps its own scales
    pp_by, tg_by, bw_by = {}, {}, {}
    for s, r in runs:
        classes = _main_kernels(s)  # a run speaks for the kernels that carry most of its weights
        est = estimate_speed(s, dev, kp, n_prompt=r.n_prompt or 512, depth=(r.n_gen or 0) // 2)
        if r.prompt_tps and est.prefill_tps:
            for c in classes:
                pp_by.setdefault(c, []).append(kp.pp_scale * r.prompt_tps / est.prefill_tps)
        b = est.decode_breakdown_s
        want = 1 / r.generation_tps - b["fixed"] if r.generation_tps else 0  # the streaming-or-compute time implied
        if want <= 0:
            continue
        # decode is the slower of streaming and computing: the binding term takes the measured time, and the other
        # may not exceed it (a memory-bound run faster than its kernels' probed rate says those kernels are faster)
        compute_binds = b["compute"] > b["bandwidth"]
        for c in classes:
            if compute_binds or b["compute"] > want:
                tg_by.setdefault(c, []).append(kp.tg(c) * b["compute"] / want)
            if not compute_binds or b["bandwidth"] > want:
                bw_by.setdefault(c, []).append(kp.bw(c) * b["bandwidth"] / want)
    def decode_mean(d, overall, top=math.inf):
        # the probe measured each class's decode kernels already: a class's own factor is a second-order correction,
        # taken halfway (geometric) from the fit over all runs, since one run's noise (10-15 % here from minute to
        # minute, memory bandwidth shared with neighbours) is all it rests on; more once runs measured again insist. A run that needs more than
        # CLASS_RANGE, or streaming past the probed read bandwidth, is noise the fit must not absorb.
        # With one run (--model) there is nothing to weigh it against: it is all the evidence, taken whole.
        out = {}
        for c, v in d.items():
            own = sum(v) / len(v)
            if len(runs) > 1:
                own = min(max(own, overall / CLASS_RANGE), overall * CLASS_RANGE, top)
                own = overall * (own / overall) ** class_weight
            out[c] = own
        return out
    # prefill is compute (steadier here) and its per-class differences are large and real (repacked layouts, the
    # output projection of a small model): each measured class keeps its own
    return replace(kp, pp_scale_by_class={c: sum(v) / len(v) for c, v in pp_by.items()},
                   tg_scale_by_class=decode_mean(tg_by, kp.tg_scale),
                   bw_eff_by_class=decode_mean(bw_by, kp.bw_eff, MAX_STREAM_EFF))


def _main_kernels(spec: ModelSpec, share: float = 0.1) -> list[str]:
    """Kernel classes holding at least `share` of the weights read per token."""
    from fitcheck.estimator.speed import active_by_kernel

    elems = active_by_kernel(spec)[1]
    total = sum(elems.values()) or 1
    return [c for c, n in elems.items() if n / total >= share]


def solve_kernel_model(base, runs: list[tuple[ModelSpec, CalibrationRun]], dev: DeviceSpeedSpec,
                       insist: bool = False, store_anyway: bool = False):
    """The kernel model's factors for this device (bounded least squares on log errors, scipy), with its
    residuals and leave-one-run-out errors. Refuses (MissedOwnRun) a fit that misses its own runs by > 10 %,
    unless `store_anyway` (then the miss is recorded). `insist`: the runs were measured again, so each weight
    class takes more of its own deviation (INSIST_CLASS_WEIGHT)."""
    kp = _fit_kernel_model(base, runs, dev, INSIST_CLASS_WEIGHT if insist else CLASS_WEIGHT)
    res = _kernel_residuals(kp, runs, dev)
    worst = max(res, key=lambda x: abs(x[2]))
    loo = []
    if len(runs) >= 3:
        for i, (s, r) in enumerate(runs):
            others = runs[:i] + runs[i + 1:]
            for name, metric, e in _kernel_residuals(_fit_kernel_model(base, others, dev), [(s, r)], dev):
                loo.append({"run": name, "metric": metric, "error": round(math.expm1(e), 4)})
    factors = {"model": "llama.cpp kernel model", "bw_eff": round(kp.bw_eff, 4), "tg_scale": round(kp.tg_scale, 4),
               "pp_scale": round(kp.pp_scale, 4), "probe_bw_gbps": dev.bw_gbps,
               "residuals": [{"run": n, "metric": m, "error": round(math.expm1(e), 4)} for n, m, e in res],
               "rms_log_error": round(math.sqrt(sum(e * e for *_, e in res) / len(res)), 4),
               "leave_one_out": loo}
    if abs(math.expm1(worst[2])) > REPRODUCE_WITHIN:
        if not store_anyway:
            raise MissedOwnRun(worst[0], worst[1], math.expm1(worst[2]))
        factors["missed_own_run"] = {"run": worst[0], "metric": worst[1], "error": round(math.expm1(worst[2]), 4)}
    return kp, factors


def _dominant_type(spec: ModelSpec) -> str:
    by: dict[str, int] = {}
    for t in spec.tensors:
        if len(t.shape) >= 2:
            by[t.ggml_type] = by.get(t.ggml_type, 0) + t.n_bytes
    return max(by, key=by.get) if by else "F32"


def _run_one(spec: ModelSpec, path: Path, label: str, quick: bool, dev: DeviceSpeedSpec, base: BackendParams,
             usable_bytes: int, force: bool, repack: bool = True) -> tuple[CalibrationRun, Any]:
    from fitcheck.estimator.memory import estimate_memory

    settings = RunSettings(n_ctx=1024, use_extra_bufts=repack)  # llama.cpp's default: repacked weights
    need = estimate_memory(spec, settings).total_bytes
    if need > usable_bytes * MEMORY_MARGIN and not force:
        raise CalibrationError(f"{path}: needs {need / 1e9:.2f} GB, more than {MEMORY_MARGIN:.0%} of the "
                               f"{usable_bytes / 1e9:.2f} GB usable; refusing (use --force to run anyway)")
    n_prompt, n_gen, reps = (128, 64, 3) if quick else (512, 128, 5)
    res = run_llama(path, n_prompt=n_prompt, n_gen=n_gen, reps=reps, settings=settings, tg_depth=0)
    est = estimate_speed(spec, dev, base, n_prompt=n_prompt, depth=n_gen // 2)
    run = CalibrationRun(
        model=label, path=str(path), weight_type=_dominant_type(spec), weights_bytes=spec.weights_bytes,
        n_params=spec.parameter_count, n_prompt=n_prompt, n_gen=n_gen, n_threads=res.settings.n_threads or 0,
        prompt_tps=res.prompt_tps, prompt_tps_std=res.prompt_tps_std, generation_tps=res.generation_tps,
        generation_tps_std=res.generation_tps_std, ttft_s=res.ttft_s, load_s=res.load_s,
        peak_memory_bytes=res.peak_memory_bytes, predicted_decode_tps=est.decode_tps, predicted_prefill_tps=est.prefill_tps)
    return run, res


def calibrate(profile: dict[str, Any], model: str | None = None, quick: bool = False, force: bool = False,
              on_step: Callable[[str], None] | None = None, store_anyway: bool = False) -> Calibration:
    """Run llama.cpp on the calibration models (or `model`) and derive this device's speed parameters."""
    from fitcheck.device.device_speed import from_profile, params_for
    from fitcheck.model.inspection import load_spec
    from fitcheck.paths import cache_dir

    from fitcheck.device.device_speed import kernel_params

    step = on_step or (lambda s: None)
    dev, _ = from_profile(profile)
    base = kernel_params()[0] if dev.kernels else params_for(dev.backend)[0]
    from fitcheck.device.resolve import profile_usable

    usable, _ = profile_usable(profile)
    mem = profile["memory"]
    llc = profile.get("cpu", {}).get("llc_bytes")
    notes = []
    if model:
        targets = [(load_spec(model), Path(model), Path(model).name)]
        if llc and targets[0][0].weights_bytes < MODEL_LLC_MULTIPLE * llc:
            notes.append(f"WARNING: {Path(model).name} ({targets[0][0].weights_bytes >> 20} MiB) is under 4x the "
                         f"{llc >> 20} MiB last-level cache: it decodes partly from cache, so bandwidth reads high")
    else:
        folder = cache_dir() / "calibration"
        targets = []
        for m in calibration_shapes(llc, mem["available_bytes"]):
            step(f"preparing {m.name}")
            path = ensure_model(m, folder)
            targets.append((load_spec(path), path, m.name))
    runs, crashed, last = [], None, None
    # rounds over every model, each keeping its fastest decode and prefill (fitcheck.calibration.rounds): a
    # neighbour's burst slows one run by 10-15 % here (Q8_0 tg 70.5 then 82.4 t/s minutes apart), and a calibration
    # taken in one moved a held-out forecast by as much. A single round when one round already fills the budget.
    def job(spec, path, label):
        def run(rnd: int):
            nonlocal crashed, last
            step(f"running {label}" + (f" (round {rnd + 1})" if rnd else ""))
            # once repacking has crashed, later runs start without it
            r, last = _run_one(spec, path, label, quick, dev, base, usable, force, repack=crashed is None)
            crashed = crashed or last.crashed_first
            return r
        return run

    seen = in_rounds([job(*t) for t in targets], _settled, ROUND_BUDGET_S[quick])
    runs = [(spec, functools.reduce(best_of, s)) for (spec, _, _), s in zip(targets, seen)]
    if len(seen[0]) > 1:
        notes.append(f"{len(seen[0])} rounds; each run is its fastest round (decode spread across rounds "
                     + ", ".join(f"{r.model} {spread([x.generation_tps for x in s]):.0%}" for (_, r), s in zip(runs, seen))
                     + ")")
    again = 0
    for attempt in range(REMEASURE + 1):
        try:
            last_try = attempt == REMEASURE
            params, factors = _solve(base, runs, dev, insist=attempt > 0, store_anyway=store_anyway and last_try)
            break
        except MissedOwnRun as e:
            if last_try:
                e.runs = tuple(r for _, r in runs)
                raise
            # a noisy machine, and noise only slows a run: a run measured slower than the fit says was slowed, so it
            # is measured again; one measured faster says the others were, so they are (each keeps its fastest)
            missed = next(k for k, (_, r) in enumerate(runs) if r.model == e.run)
            for i in ([missed] if e.error > 0 else [k for k in range(len(runs)) if k != missed]):
                spec, path, label = targets[i]
                step(f"measuring {label} again ({e.run} {e.metric} missed by {e.error:+.0%})")
                rerun, last = _run_one(spec, path, label, quick, dev, base, usable, force, repack=crashed is None)
                runs[i] = (spec, best_of(runs[i][1], rerun))
                again += 1
    if again:
        notes.append(f"{again} run(s) measured again: the first measurements disagreed by more than "
                     f"{REPRODUCE_WITHIN:.0%} (a busy or noisy machine)")
    if factors.get("missed_own_run"):
        notes.append(missed_note(factors))
    if crashed:
        notes.append(f"{crashed}; retried with weight repacking off (use_extra_bufts=False), results are from that run")
    return Calibration(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        source="model" if model else "synthetic", runs=tuple(r for _, r in runs), params=params,
        factors=factors, system_info=last.system_info if last else "", llama_cpp_python=last.llama_cpp_python if last else "",
        crashed_first=crashed, notes=tuple(notes),
    )


def _solve(base, runs, dev, insist: bool = False, store_anyway: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored parameters: the kernel model's factors where the profile has kernels, else the class model's."""
    from fitcheck.estimator.speed import CpuKernelParams

    if isinstance(base, CpuKernelParams):
        kp, factors = solve_kernel_model(base, runs, dev, insist, store_anyway)
        return {"kernel_model": asdict(kp), "backend": dev.backend, "source": kp.source}, factors
    from fitcheck.estimator.speed import params_to_dict

    params, factors = solve_params(base, runs, dev)
    return {**params_to_dict(params), "backend": dev.backend}, factors


def to_llama_bench(cal: Calibration | MissedOwnRun) -> list[dict[str, Any]]:
    """The runs as llama-bench's JSON records (one per test); a refused calibration's runs too."""
    created = getattr(cal, "created", None) or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out = []
    for r in cal.runs:
        for n_prompt, n_gen, avg, sd in ((r.n_prompt, 0, r.prompt_tps, r.prompt_tps_std), (0, r.n_gen, r.generation_tps, r.generation_tps_std)):
            if avg:
                out.append({"model_filename": r.path, "model_type": f"{r.model} {r.weight_type}", "model_size": r.weights_bytes,
                            "model_n_params": r.n_params, "n_prompt": n_prompt, "n_gen": n_gen, "n_threads": r.n_threads,
                            "avg_ts": avg, "stddev_ts": sd or 0.0, "build_commit": "", "backends": "CPU",
                            "test_time": created})
    return out


def from_llama_bench(records: Any, profile: dict[str, Any], store_anyway: bool = False) -> Calibration:
    """Calibrate from llama-bench JSON output: records whose model file can be read here."""
    from fitcheck.device.device_speed import from_profile, params_for
    from fitcheck.model.inspection import load_spec

    if not isinstance(records, list) or not records:
        raise CalibrationError("llama-bench JSON must be a non-empty list of records")
    from fitcheck.device.device_speed import kernel_params

    dev, _ = from_profile(profile)
    base = kernel_params()[0] if dev.kernels else params_for(dev.backend)[0]
    by_model: dict[str, dict[str, Any]] = {}
    skipped = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not {"model_filename", "n_prompt", "n_gen", "avg_ts"} <= rec.keys():
            skipped.append(f"record {i}: missing model_filename/n_prompt/n_gen/avg_ts")
            continue
        entry = by_model.setdefault(rec["model_filename"], {})
        if rec["n_gen"] and not rec["n_prompt"]:
            entry["tg"] = rec
        elif rec["n_prompt"] and not rec["n_gen"]:
            entry["pp"] = rec
    runs = []
    for fname, tests in by_model.items():
        if not Path(fname).exists():
            skipped.append(f"{fname}: model file not found here (its shape is needed)")
            continue
        spec = load_spec(fname)
        pp, tg = tests.get("pp"), tests.get("tg")
        runs.append((spec, CalibrationRun(
            model=Path(fname).name, path=fname, weight_type=_dominant_type(spec), weights_bytes=spec.weights_bytes,
            n_params=spec.parameter_count, n_prompt=pp["n_prompt"] if pp else 0, n_gen=tg["n_gen"] if tg else 0,
            n_threads=(pp or tg).get("n_threads", 0), prompt_tps=pp["avg_ts"] if pp else None,
            prompt_tps_std=pp.get("stddev_ts") if pp else None, generation_tps=tg["avg_ts"] if tg else None,
            generation_tps_std=tg.get("stddev_ts") if tg else None, ttft_s=None, load_s=None, peak_memory_bytes=None)))
    if not runs:
        raise CalibrationError("no usable llama-bench record: " + "; ".join(skipped[:3]))
    try:
        params, factors = _solve(base, runs, dev)
    except MissedOwnRun:  # llama-bench's figures are averages of repetitions: fitted as runs measured again are
        params, factors = _solve(base, runs, dev, insist=True, store_anyway=store_anyway)
    params["source"] = "calibrated from llama-bench output"
    return Calibration(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), source="llama-bench",
        runs=tuple(r for _, r in runs), params=params, factors=factors,
        notes=tuple(skipped) + ((missed_note(factors),) if factors.get("missed_own_run") else ()))


def check(profile: dict[str, Any], model: str, quick: bool = False) -> dict[str, Any]:
    """Predict a model's decode, prefill and memory on this device, run it, and compare (nothing is stored)."""
    from fitcheck.device.device_speed import from_profile, params_for_basis
    from fitcheck.device.resolve import profile_usable
    from fitcheck.estimator.memory import estimate_memory
    from fitcheck.model.inspection import load_spec

    spec = load_spec(model)
    dev, basis = from_profile(profile)
    params, note, calibrated = params_for_basis(dev.backend, basis, dev.kernels)
    usable, _ = profile_usable(profile)
    n_prompt, n_gen, reps = (128, 64, 3) if quick else (512, 128, 5)
    settings = RunSettings(n_ctx=1024, use_extra_bufts=dev.kernels.repack if dev.kernels else True,
                           n_threads=dev.kernels.threads if dev.kernels else None)
    from fitcheck.device.paging_rules import profile_rule

    repacked = profile_rule(profile).repacked_types if settings.use_extra_bufts else frozenset()
    need = estimate_memory(spec, settings, n_prompt=n_prompt, repacked_types=repacked)
    if need.total_bytes > usable * MEMORY_MARGIN:
        raise CalibrationError(f"{Path(model).name}: needs {need.total_bytes / 1e9:.2f} GB, more than {MEMORY_MARGIN:.0%} "
                               f"of the {usable / 1e9:.2f} GB usable; not run")
    est = estimate_speed(spec, dev, params, n_prompt=n_prompt, depth=n_gen // 2)
    res = run_llama(model, n_prompt=n_prompt, n_gen=n_gen, reps=reps, settings=settings)
    rows = []
    for metric, pred, meas, sd in (("decode t/s", est.decode_tps, res.generation_tps, res.generation_tps_std),
                                   ("prefill t/s", est.prefill_tps, res.prompt_tps, res.prompt_tps_std),
                                   ("peak RSS GB", need.resident_bytes / 1e9, res.peak_memory_bytes / 1e9, 0.0)):
        rows.append({"metric": metric, "predicted": pred, "measured": meas, "measured_sd": sd,
                     "error": (pred / meas - 1) if pred and meas else None})
    return {"model": Path(model).name, "weights_bytes": spec.weights_bytes, "n_prompt": n_prompt, "n_gen": n_gen,
            "threads": res.settings.n_threads, "calibrated": calibrated, "parameters": note, "rows": rows,
            "crashed_first": res.crashed_first}
