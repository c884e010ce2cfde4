"""Calibrate on the default models, then predict two models calibration never saw, and measure them.

0. Probes this machine (quick, with llama.cpp's kernel probe) in the same run.
1. `calibrate` (full: pp512, tg128, 5 repetitions; `--quick`: pp128, tg32, 3) on fitcheck's three synthetic
   calibration models (Q4_K_M at the largest size, >= 1 GiB and 16x the LLC; Q8_0 at half; Q4_0 at a quarter).
2. Writes llamas of other shapes: a Q4_0 and a ~2 GB Q8_0, both at least 4x
   the last-level cache (the model's domain: weights streamed from DRAM), and
   a ~0.3 GB Q4_0 that sits about the size of this VM's 300 MiB L3, reported
   beside them to show what the model does not cover (cache-resident weights).
3. Predicts their decode, prefill and peak RSS with the calibrated parameters,
   then measures them with llama.cpp in the same run.
Targets: decode within 10 %, prefill within 20 %, peak RSS within 10 %. Run it again under `taskset -c 0`
(one core: llama.cpp then runs one thread) to see it hold on another shape of machine.

    python benchmarks/calibration_holdout.py [--keep DIR] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fitcheck.calibration.synth import SynthModel  # noqa: E402

# models calibration never saw (also used by calibration_repeat.py)
HELD_OUT = {
    "1.4 GB Q4_0 (30 x 2560)": SynthModel(n_layer=30, n_embd=2560, n_head=20, n_head_kv=5, n_ff=6912, n_vocab=48000, weight_type="Q4_0", seed=23),
    "2 GB Q8_0 (28 x 2304)": SynthModel(n_layer=28, n_embd=2304, n_head=18, n_head_kv=6, n_ff=6144, n_vocab=32000, weight_type="Q8_0", seed=22),
    "0.3 GB Q4_0 (16 x 1536), ~LLC": SynthModel(n_layer=16, n_embd=1536, n_head=12, n_head_kv=4, n_ff=4096, n_vocab=48000, weight_type="Q4_0", seed=21),
}


ROUNDS = 2


def measure_rounds(models: dict, folder: Path, settings, rounds: int = ROUNDS) -> dict:
    """label -> (spec, fastest of `rounds` interleaved llama.cpp runs, (decode, prefill) spread across rounds).

    The same rule as the calibration's: a neighbour's burst only ever slows a run, so each side of the comparison
    is this machine's undisturbed rate, and the spread shows how noisy the minute was."""
    import functools

    from fitcheck.calibration.calibrate import best_of
    from fitcheck.calibration.llama_run import run_llama
    from fitcheck.calibration.rounds import in_rounds, spread
    from fitcheck.calibration.synth import write_synthetic
    from fitcheck.model.inspection import load_spec

    folder.mkdir(parents=True, exist_ok=True)
    paths = {label: folder / f"holdout-{m.n_layer}x{m.n_embd}-{m.weight_type}.gguf" for label, m in models.items()}
    for label, path in paths.items():
        if not path.exists():
            write_synthetic(path, models[label])
    jobs = [lambda _, p=p: run_llama(p, n_prompt=512, n_gen=128, reps=3, settings=settings) for p in paths.values()]
    seen = in_rounds(jobs, lambda _: False, float("inf"), min_rounds=rounds, max_rounds=rounds)
    return {label: (load_spec(paths[label]), functools.reduce(best_of, rs),
                    (spread([r.generation_tps for r in rs]), spread([r.prompt_tps for r in rs])))
            for label, rs in zip(paths, seen)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from fitcheck.device import profile
    from fitcheck.calibration.calibrate import calibrate
    from fitcheck.device.device_speed import from_profile
    from fitcheck.calibration.llama_run import RunSettings
    from fitcheck.estimator.memory import estimate_memory
    from fitcheck.calibration.kernels import add_to_profile
    from fitcheck.device.paging_rules import profile_rule
    from fitcheck.device.device_speed import params_for_basis
    from fitcheck.estimator.speed import estimate_speed

    prof = add_to_profile(profile.collect(quick=True), quick=True)
    cal = calibrate(prof, quick=args.quick, on_step=lambda m: print(m, file=sys.stderr))
    dev, basis = from_profile({**prof, "calibration": cal.to_dict()})
    params, note, _ = params_for_basis(dev.backend, basis, dev.kernels)
    s = RunSettings(n_ctx=1024, use_extra_bufts=cal.crashed_first is None,
                    n_threads=dev.kernels.threads if dev.kernels else None)
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure_rounds(HELD_OUT, args.keep or Path(tmp), s)
    rows = []
    for label, (spec, run, spread) in measured.items():
        est = estimate_speed(spec, dev, params, n_prompt=512, depth=64)
        repacked = profile_rule(prof).repacked_types if s.use_extra_bufts else frozenset()
        mem = estimate_memory(spec, s, n_prompt=512, repacked_types=repacked)
        rows.append((label, est, mem, run, spread))
    print(f"{dev.kernels.threads if dev.kernels else '?'} threads, read {dev.bw_gbps:.1f} GB/s; calibrated on "
          f"{', '.join(f'{r.model} ({r.weight_type})' for r in cal.runs)}: {note}; factors "
          + ", ".join(f"{k} {v}" for k, v in cal.factors.items() if k in ("bw_eff", "tg_scale", "pp_scale", "compute_scale")))
    for r in cal.runs:
        print(f"  calibration run {r.model}: pp {r.prompt_tps:.1f} t/s, tg {r.generation_tps:.2f} t/s")
    print(f"{'held-out model':<32}{'metric':<9}{'predicted':>11}{'measured (rounds spread)':>26}{'error':>9}{'target':>8}")
    for label, est, mem, run, spread in rows:
        for metric, p, m, sd, tgt in (("decode", est.decode_tps, run.generation_tps, spread[0], 0.10),
                                      ("prefill", est.prefill_tps, run.prompt_tps, spread[1], 0.20),
                                      ("peak RSS", mem.resident_bytes / 2**20, run.peak_memory_bytes / 2**20, 0, 0.10)):
            err = p / m - 1
            unit = " MiB" if metric == "peak RSS" else ""
            verdict = "n/a" if "LLC" in label else ("ok" if abs(err) <= tgt else "MISS")
            print(f"{label:<32}{metric:<9}{p:>11.2f}{m:>14.2f} ({sd:>+7.1%}){err:>+9.1%}{verdict:>8}{unit}")


if __name__ == "__main__":
    main()
