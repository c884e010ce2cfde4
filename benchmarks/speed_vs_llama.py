"""Speed model vs a real llama.cpp run on this machine, before any calibration.

Probes this machine (bandwidth and compute, quick), writes the synthetic
~1 GB Q8_0 llama (22 x 2048, a shape the CPU parameters were not fitted on),
predicts decode and prefill from the probe alone, then measures with
llama.cpp in the same run (best of 3 repetitions). Target (issue #5): decode
within 25 %.

    python benchmarks/speed_vs_llama.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    from fitcheck.device.device_speed import params_for
    from fitcheck.model.inspection import load_spec
    from fitcheck.calibration.llama_run import RunSettings, run_llama
    from fitcheck.estimator.speed import DeviceSpeedSpec, estimate_speed
    from fitcheck.calibration.synth import SynthModel, write_synthetic
    from probes import bandwidth, compute

    m = SynthModel(n_layer=22, n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000, weight_type="Q8_0", seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "synthetic-22x2048-Q8_0.gguf"
        if not path.exists():
            write_synthetic(path, m)
        bw = bandwidth.probe(quick=True)
        fl = compute.probe(quick=True)
        dev = DeviceSpeedSpec("cpu", bw["read_gbps"], fl["fp32_gflops"] / 1000)
        params, note = params_for("cpu")
        spec = load_spec(path)
        est = estimate_speed(spec, dev, params, n_prompt=512, depth=64)
        run = run_llama(path, n_prompt=512, n_gen=128, reps=3, settings=RunSettings(n_ctx=1024))
    tg_best = run.generation_tps + (run.generation_tps_std or 0)
    print(f"probe: read {bw['read_gbps']:.1f} GB/s, fp32 GEMM {fl['fp32_gflops']:.0f} GFLOP/s; parameters: {note}")
    print(f"model: {spec.weights_bytes / 1e9:.2f} GB Q8_0, {spec.n_layer} layers")
    print(f"{'metric':<10}{'predicted':>12}{'measured (mean +- sd)':>26}{'error':>9}")
    print(f"{'decode':<10}{est.decode_tps:>12.2f}{run.generation_tps:>17.2f} +- {run.generation_tps_std:<6.2f}"
          f"{est.decode_tps / run.generation_tps - 1:>+9.1%}")
    print(f"{'prefill':<10}{est.prefill_tps:>12.2f}{run.prompt_tps:>17.2f} +- {run.prompt_tps_std:<6.2f}"
          f"{est.prefill_tps / run.prompt_tps - 1:>+9.1%}")
    ok = abs(est.decode_tps / run.generation_tps - 1) <= 0.25
    print(f"decode target (within 25 %): {'met' if ok else 'NOT met'} (mean+sd {tg_best:.2f} t/s)")


if __name__ == "__main__":
    main()
