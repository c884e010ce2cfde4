"""Measure llama.cpp CPU speed on synthetic models, with this machine's probe in the same run.

The published measurements have no CPU rows, so the CPU backend's speed
parameters are fitted on runs like these (benchmarks/fit_speed_model.py reads
device_db/cpu_measurements.csv). Each row records the probed read bandwidth
and fp32 GEMM rate taken in the same run, the machine and the software.
Models are all much larger than the last-level cache, in several weight types.
The ~1 GB Q8_0 shape used for the acceptance check (22 x 2048) is left out.

    python benchmarks/measure_cpu_speed.py [--keep DIR] [--append]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
OUT = HERE.parent / "device_db" / "cpu_measurements.csv"
COLUMNS = ["date", "machine", "cpu", "threads", "llama_cpp_python", "probe_read_gbps", "probe_fp32_gflops",
           "model", "n_layer", "n_embd", "n_ff", "n_head", "n_head_kv", "n_vocab", "weight_type", "weights_bytes",
           "test", "value_tps", "std_tps"]


def shapes():
    from fitcheck.calibration.synth import SynthModel

    return {
        "q4_0-24x2560": SynthModel(n_layer=24, n_embd=2560, n_head=20, n_head_kv=4, n_ff=6912, n_vocab=32000, weight_type="Q4_0", seed=11),
        "q4_k-16x3072": SynthModel(n_layer=16, n_embd=3072, n_head=24, n_head_kv=8, n_ff=8192, n_vocab=32000, weight_type="Q4_K", seed=12),
        "q8_0-40x1792": SynthModel(n_layer=40, n_embd=1792, n_head=14, n_head_kv=14, n_ff=4864, n_vocab=16000, weight_type="Q8_0", seed=6),
        "q8_0-20x3072": SynthModel(n_layer=20, n_embd=3072, n_head=24, n_head_kv=8, n_ff=8192, n_vocab=32000, weight_type="Q8_0", seed=7),
        "f16-8x2560": SynthModel(n_layer=8, n_embd=2560, n_head=20, n_head_kv=4, n_ff=6912, n_vocab=32000, weight_type="F16", seed=13),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--append", action="store_true", help="append to device_db/cpu_measurements.csv")
    args = ap.parse_args()
    import cpuinfo

    from fitcheck.model.inspection import load_spec
    from fitcheck.calibration.llama_run import RunSettings, run_llama
    from fitcheck.calibration.synth import write_synthetic
    from probes import bandwidth, compute

    bw = bandwidth.probe(quick=True)
    fl = compute.probe(quick=True)
    cpu = cpuinfo.get_cpu_info().get("brand_raw", platform.processor())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for label, m in shapes().items():
            path = folder / f"cpu-{label}.gguf"
            if not path.exists():
                print(f"writing {label} ...", file=sys.stderr)
                write_synthetic(path, m)
            spec = load_spec(path)
            run = run_llama(path, n_prompt=512, n_gen=64, reps=2, settings=RunSettings(n_ctx=1024))
            for test, v, sd in (("pp512", run.prompt_tps, run.prompt_tps_std), ("tg64", run.generation_tps, run.generation_tps_std)):
                rows.append({"date": dt.date.today().isoformat(), "machine": platform.node(), "cpu": cpu,
                             "threads": run.settings.n_threads, "llama_cpp_python": run.llama_cpp_python,
                             "probe_read_gbps": bw["read_gbps"], "probe_fp32_gflops": fl["fp32_gflops"], "model": label,
                             "n_layer": m.n_layer, "n_embd": m.n_embd, "n_ff": m.n_ff, "n_head": m.n_head,
                             "n_head_kv": m.n_head_kv, "n_vocab": m.n_vocab, "weight_type": m.weight_type,
                             "weights_bytes": spec.weights_bytes, "test": test, "value_tps": round(v, 3), "std_tps": round(sd, 3)})
                print(f"{label:<16} {test:<6} {v:8.2f} t/s (probe read {bw['read_gbps']:.1f} GB/s, fp32 {fl['fp32_gflops']:.0f} GFLOP/s)")
    if args.append:
        new = not OUT.exists()
        with OUT.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                w.writeheader()
            w.writerows(rows)
        print(f"appended {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
