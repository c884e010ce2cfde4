"""Batched decode of N sequences at once: fitcheck's aggregate t/s against llama.cpp's, in the same run.

For each model of depth_vs_llama.py (dense, sliding-window, hybrid), llama.cpp fills one sequence to D tokens,
shares its cells with N-1 more (llama_memory_seq_cp, one unified cache), then times G steps that decode one token
for every sequence (one llama_batch of N tokens a step: what llama-server's parallel slots do); fitcheck predicts
the same with estimate_parallel from this machine's calibrated profile. Target (issue 28): within 15 %.

    python benchmarks/parallel_vs_llama.py [--seqs 1,2,4,8] [--depth 512] [--gen 16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqs", default="1,2,4,8")
    ap.add_argument("--depth", type=int, default=512)
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--json", type=Path, help="also write the profile and every run here (the input of python -m "
                    "fitcheck.refit --runs; give --keep so its model files stay)")
    args = ap.parse_args()
    seqs = [int(x) for x in args.seqs.split(",")]

    from depth_vs_llama import calibrated, models

    from fitcheck.calibration.llama_run import LlamaSession, RunSettings, run_llama
    from fitcheck.estimator.speed import AttnMode, estimate_parallel
    from fitcheck.model.inspection import load_spec

    dev, params, note, prof = calibrated()
    rows: list[dict] = []
    print(f"parameters: {note}")
    errs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, LlamaSession() as session:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'model':<38}{'seqs':>5}{'measured t/s':>14}{'predicted':>11}{'error':>8}")
        for label, path in models(folder).items():
            spec = load_spec(path)
            for n in seqs:
                n_ctx = -(-(n * (args.depth + args.gen)) // 256) * 256
                s = RunSettings(n_ctx=n_ctx, n_threads=dev.kernels.threads if dev.kernels else None,
                                use_extra_bufts=dev.kernels.repack if dev.kernels else True)  # as predicted
                r = run_llama(path, n_prompt=0, n_gen=args.gen, reps=args.reps, settings=s, depth=args.depth,
                              n_parallel=n, session=session, timeout_s=900)
                e = estimate_parallel(spec, dev, params, n, args.depth + args.gen // 2, s.n_ubatch, AttnMode.of(s))
                err = e.aggregate_tps / r.generation_tps - 1
                rows.append({"model": label, "model_path": str(path), "n_seq": n, "depth": args.depth + args.gen // 2,
                             "n_ubatch": s.n_ubatch, "flash_attn": s.flash_attn, "swa_full": s.swa_full,
                             "aggregate_tps": r.generation_tps, "pred_aggregate_tps": e.aggregate_tps})
                if args.json:
                    args.json.write_text(json.dumps({"profile": prof, "rows": rows}, indent=1))
                errs.setdefault(label, []).append(abs(err))
                print(f"{label[:37]:<38}{n:>5}{r.generation_tps:>14.1f}{e.aggregate_tps:>11.1f}{err:>+8.1%}", flush=True)
    for label, v in errs.items():
        print(f"  {label}: MAPE {sum(v) / len(v):.1%} (worst {max(v):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
