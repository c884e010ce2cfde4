"""Three consecutive quick calibrations: do they agree on models they never saw?

As a user would run `fitcheck calibrate --quick` three times on one saved profile: probes once (quick, with
llama.cpp's kernel probe), calibrates N times, and after each calibration predicts the held-out models of
calibration_holdout.py (they need not exist: the shape is enough). Prints each prediction and the spread
(largest / smallest - 1). Target (issue #12): within 10 % of each other. Then measures the held-out models
with llama.cpp (fastest of two rounds, as the calibration takes its runs), so the spread can be read against a real figure from the same run.

    python benchmarks/calibration_repeat.py [--n 3] [--keep DIR] [--no-measure]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--no-measure", action="store_true")
    args = ap.parse_args()
    from calibration_holdout import HELD_OUT, measure_rounds
    from fitcheck.calibration.calibrate import CalibrationError, calibrate
    from fitcheck.calibration.kernels import probe_device
    from fitcheck.calibration.llama_run import RunSettings
    from fitcheck.calibration.synth import spec_of
    from fitcheck.device.device_speed import from_profile, params_for_basis
    from fitcheck.estimator.speed import estimate_speed

    prof = probe_device(quick=True)
    held = {label: m for label, m in HELD_OUT.items() if "LLC" not in label}
    preds: dict[str, list[tuple[float, float]]] = {label: [] for label in held}
    stored = 0
    for i in range(args.n):
        try:
            cal = calibrate(prof, quick=True, on_step=lambda m: print(m, file=sys.stderr))
        except CalibrationError as e:
            print(f"calibration {i + 1}: not stored: {e}")
            continue
        stored += 1
        print(f"calibration {i + 1}: stored; notes: {'; '.join(cal.notes) or 'none'}")
        dev, basis = from_profile({**prof, "calibration": cal.to_dict()})
        params = params_for_basis(dev.backend, basis, dev.kernels)[0]
        print(f"calibration {i + 1}: " + ", ".join(f"{r.model} tg {r.generation_tps:.1f} pp {r.prompt_tps:.0f}" for r in cal.runs)
              + "; factors " + ", ".join(f"{k} {cal.factors[k]}" for k in ("bw_eff", "tg_scale", "pp_scale") if k in cal.factors))
        for label, m in held.items():
            est = estimate_speed(spec_of(m), dev, params, n_prompt=512, depth=64)
            preds[label].append((est.decode_tps, est.prefill_tps))
    print(f"stored {stored} of {args.n} calibrations on the first try")
    measured = {}
    if not args.no_measure:
        with tempfile.TemporaryDirectory() as tmp:
            settings = RunSettings(n_ctx=1024, n_threads=dev.kernels.threads if dev.kernels else None,
                                   use_extra_bufts=cal.crashed_first is None)
            for label, (_, run, _) in measure_rounds(held, args.keep or Path(tmp), settings).items():
                measured[label] = (run.generation_tps, run.prompt_tps)
    print(f"{'held-out model':<26}{'metric':<9}{'predictions':<28}{'spread':>8}{'target':>8}{'measured':>10}")
    for label, rows in preds.items():
        for k, metric in enumerate(("decode", "prefill")):
            vals = [r[k] for r in rows]
            if not vals:
                continue
            spread = max(vals) / min(vals) - 1
            meas = f"{measured[label][k]:.1f}" if label in measured else "-"
            print(f"{label:<26}{metric:<9}{' / '.join(f'{v:.1f}' for v in vals):<28}{spread:>+8.1%}"
                  f"{'ok' if spread <= 0.10 else 'MISS':>8}{meas:>10}")


if __name__ == "__main__":
    main()
