"""The bandwidth probe against a C STREAM-style reference and against llama.cpp's decode.

1. Builds benchmarks/stream_ref.c (gcc -O3 -march=native -fopenmp), runs it on
   arrays of the same size as the probe's (>= 8x the LLC), and prints the
   probe's read/copy/triad bandwidth as a ratio of the reference's, for the
   probe's C kernels and for its numpy fallback. Runs alternate (reference,
   probe, reference, ...) and each side keeps its best. Target >= 0.90.
2. Writes a synthetic Q8_0 llama much larger than the LLC, decodes with
   llama.cpp, and prints the probe's read bandwidth over the bandwidth
   llama.cpp achieved (bytes of weights read per token x tokens/s).

    python benchmarks/probe_vs_reference.py [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def build_reference(out: Path) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        sys.exit("no C compiler: cannot build the STREAM reference")
    exe = out / "stream_ref"
    subprocess.run([cc, "-O3", "-march=native", "-fopenmp", "-fno-tree-loop-distribute-patterns",
                    str(HERE / "stream_ref.c"), "-o", str(exe)], check=True)
    return exe


def run_reference(exe: Path, n_elements: int) -> dict:
    r = subprocess.run([str(exe), str(n_elements), "7"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def best_of(runs: list[dict], key: str) -> float:
    return max(r[key] for r in runs)


def decode_bandwidth(folder: Path, llc_bytes: int) -> dict:
    from fitcheck.model.inspection import load_spec
    from fitcheck.calibration.llama_run import RunSettings, run_llama
    from fitcheck.calibration.synth import SynthModel, write_synthetic

    # ~2.2 GB of Q8_0 weights: 7x a 300 MiB LLC, far past any client CPU's cache
    m = SynthModel(n_layer=20, n_embd=3072, n_head=24, n_head_kv=8, n_ff=8192, n_vocab=32000, weight_type="Q8_0", seed=7)
    path = folder / "decode-bw-q8_0.gguf"
    if not path.exists():
        print("writing the decode model ...", file=sys.stderr)
        write_synthetic(path, m)
    spec = load_spec(path)
    # per generated token llama.cpp reads every weight once, except the embedding table (one row)
    embd = next(t.n_bytes for t in spec.tensors if t.name == "token_embd.weight")
    bytes_per_token = spec.weights_bytes - embd
    res = run_llama(path, n_prompt=0, n_gen=32, reps=3, settings=RunSettings(n_ctx=256))
    best_tps = res.generation_tps + (res.generation_tps_std or 0)  # mean + 1 sd ~ the better runs
    return {"model_bytes": spec.weights_bytes, "llc_multiple": spec.weights_bytes / llc_bytes,
            "tg_tps_mean": res.generation_tps, "tg_tps_std": res.generation_tps_std,
            "decode_gbps": bytes_per_token * res.generation_tps / 1e9,
            "decode_gbps_upper": bytes_per_token * best_tps / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="folder for the reference binary and decode model (reused)")
    args = ap.parse_args()
    from probes import bandwidth
    from probes.cpu import sysfs_caches

    llc = max(sysfs_caches().values())
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        exe = build_reference(folder)
        refs, c_runs, np_runs = [], [], []
        n = None
        for i in range(args.rounds):
            c = bandwidth.probe(quick=False, llc_bytes=llc)
            n = c["array_bytes"] // 8
            refs.append(run_reference(exe, n))
            c_runs.append(c)
            np_runs.append(bandwidth.probe(quick=True, llc_bytes=llc, force_numpy=True))
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
        dec = decode_bandwidth(folder, llc)
    print(f"machine: {c_runs[0]['threads']} threads, LLC {llc >> 20} MiB, arrays {n * 8 >> 20} MiB "
          f"({n * 8 / llc:.1f}x LLC), {args.rounds} alternating rounds, best of each side")
    print(f"{'kernel':<8}{'reference GB/s':>16}{'probe (C) GB/s':>16}{'ratio':>8}{'probe (numpy) GB/s':>20}{'ratio':>8}")
    for k in ("read_gbps", "copy_gbps", "triad_gbps"):
        ref = best_of(refs, k)
        pc, pn = best_of(c_runs, k), best_of(np_runs, k)
        print(f"{k[:-5]:<8}{ref:>16.2f}{pc:>16.2f}{pc / ref:>8.2f}{pn:>20.2f}{pn / ref:>8.2f}")
    read = best_of(c_runs, "read_gbps")
    print(f"llama.cpp decode of a {dec['model_bytes'] / 1e9:.2f} GB Q8_0 model ({dec['llc_multiple']:.1f}x LLC): "
          f"{dec['tg_tps_mean']:.2f} +- {dec['tg_tps_std']:.2f} t/s = {dec['decode_gbps']:.2f} GB/s of weights")
    print(f"probe read / llama.cpp decode bandwidth: {read / dec['decode_gbps']:.2f} "
          f"(llama.cpp reaches {dec['decode_gbps'] / read:.0%} of the probe's read bandwidth)")


if __name__ == "__main__":
    main()
