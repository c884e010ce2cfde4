"""Fit every backend class's speed parameters and store them: CPU, Metal, CUDA, Vulkan, OpenCL, Hexagon.

Rows: device_db/published_benchmarks_dev.csv (llama.cpp Metal #4167, CUDA #15013 and PRs, xiongjiedai,
Vulkan #10879, Jeff Geerling's runs, T-MAC's CPU thread scaling), device_db/phone_runs_dev.csv (217
llama.cpp runs on a Snapdragon 8 Gen 2 phone over CPU, OpenCL and Hexagon) and device_db/measured_runs_dev.csv
(our own llama-bench runs on a lent H200, benchmarks/cuda_check/). Every row goes through the
backtest's resolver, so it is predicted exactly as a user's question would be. The model and the fit are in
fitcheck/calibration/class_fit.py. Prints in-sample and leave-one-out errors (a device family held out; for the
phone classes a model, there being one phone) and with --write stores the values with their provenance in
device_db/speed_params.json.

    python benchmarks/fit_classes.py [--write] [--only cpu,opencl]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fitcheck.backtest import read_rows, samples_by_class  # noqa: E402
from fitcheck.calibration.class_fit import errors, fit, leave_one_out, offload, predict, type_keys  # noqa: E402

DB = HERE.parent / "device_db"
CLASSES = ("cpu", "vulkan", "opencl", "hexagon", "metal", "cuda")  # cpu first: opencl and hexagon use it
# what a GPU/NPU backend leaves to the device's CPU and which matrices miss its fast prefill kernels, as in the
# build the dev runs used (llama.rn 0.12.0-rc.9):
_IQ_LOW = ("iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq4_xs")
OFFLOAD = {
    # ggml-hexagon.cpp ggml_hexagon_supported_mul_mat: Q4_0, Q8_0, IQ4_NL, MXFP4 and F16 only, no matrix of more
    # than 16 Ki rows (the lm-head, "too large for VTCM"); htp/matmul-ops.c op_matmul: quantized rows not a
    # multiple of 256 take HVX instead of HMX
    "hexagon": dict(cpu_types=("q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_1", "q5_0", "q5_1", "bf16") + _IQ_LOW,
                    cpu_rows_over=16 * 1024, slow_align=256),
    # ggml-opencl.cpp ggml_opencl_supports_op MUL_MAT: F16, F32, Q4_0, Q4_1, MXFP4, Q4_K, Q5_K, Q6_K, Q8_0 only;
    # use_adreno_kernels: a matrix with a side under 512 takes the generic kernels
    "opencl": dict(cpu_types=("q2_k", "q3_k", "q5_0", "q5_1", "bf16") + _IQ_LOW, slow_under=512),
    # not an offload: the CPU class's per-layer cost is for a thread of 0.05 TFLOPS FP32 (the dev phone's six, on
    # average) and shrinks on faster cores
    "cpu": dict(layer_ref_tflops=0.05),
}
# classes whose prefill efficiency is fitted per GPU architecture (fitcheck.device.backends.gpu_arch), where one has
# prefill rows on two devices or more: Vulkan's shaders take cooperative-matrix paths on some and not on others
ARCHS = {"vulkan": ("nvidia", "rdna4", "rdna3", "rdna2", "gcn", "intel-arc")}
PEAK = {"cpu": "fp32 FMA peak of the cores at the run's thread count (device_db/cpu_cores.csv)",
        "metal": "fp16 Apple GPU TFLOPS", "cuda": "fp32 non-tensor CUDA TFLOPS", "vulkan": "fp32 non-tensor GPU TFLOPS",
        "opencl": "fp32 GPU TFLOPS (Adreno)", "hexagon": "1.0 per Hexagon HTP (only the v73 was measured)"}


def backend_params_of(d: dict | None):
    """The CPU class just fitted in this run, else the stored one."""
    from fitcheck.estimator.speed import params_from_dict

    if d is None:
        d = json.loads((DB / "speed_params.json").read_text())["backends"]["cpu"]
    return params_from_dict(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the values in device_db/speed_params.json")
    ap.add_argument("--only", default=",".join(CLASSES), help="comma-separated classes to fit")
    args = ap.parse_args()
    wanted = args.only.split(",")
    fitted = {}
    rows = (read_rows(DB / "published_benchmarks_dev.csv") + read_rows(DB / "phone_runs_dev.csv")
            + read_rows(DB / "measured_runs_dev.csv"))
    for backend, samples in samples_by_class(rows, CLASSES).items():
        if backend not in wanted or not samples:
            continue
        rules = OFFLOAD.get(backend, {})
        off = offload(backend_params_of(fitted.get("cpu")), **rules) if rules else None
        keys = type_keys(samples, off)
        p = fit(samples, keys, off, ARCHS.get(backend, ()))
        print(f"\n== {backend}: {len(samples)} rows, weight types {', '.join(keys)} ==")
        if p.pp_arch:
            print("  prefill by GPU architecture: " + ", ".join(f"{a} x{v:.2f}" for a, v in p.pp_arch.items()))
        print(f"  bw_eff {p.bw_eff:.3f}  t_layer {p.t_layer_s * 1e6:.1f} us  t_token {p.t_token_s * 1e3:.2f} ms"
              f"  per recurrent layer {', '.join(f'{k} {v * 1e6:.0f}' for k, v in p.t_recurrent_layer_s.items())} us, "
              f"no-dot-product factor {p.no_dot_factor:.2f}, per prompt token and recurrent layer {', '.join(f'{k} {v * 1e6:.1f}' for k, v in p.t_recurrent_token_s.items())} us")
        for k in keys:
            print(f"  {k:<8} flops/weight {p.flops_per_weight[k]:9.2f}   prefill eff {p.pp_eff[k]:.4f}")
        ins = errors(samples, p)
        print("  in-sample MAPE:")
        for k, v in sorted(ins.items()):
            print(f"    {k:<24} {statistics.fmean(v):6.1%}  (n={len(v)})")
        lo = leave_one_out(backend, samples, p)
        held = "model" if backend in ("opencl", "hexagon") else "device-family (phone rows: model)"
        by_model: dict[str, list] = {}
        for res, m, row in samples:
            by_model.setdefault(f"{row['model'][:28]:<28} {res.metric}", []).append(predict(res, p) / m - 1)
        print("  mean signed error by model:", "; ".join(f"{k.strip()} {statistics.fmean(v):+.0%}" for k, v in sorted(by_model.items())))
        print(f"  leave-one-{held}-out MAPE: " + ", ".join(f"{k} {statistics.fmean(v):.1%} (n={len(v)})" for k, v in lo.items()))
        cats = sorted({row["category"] for _, _, row in samples})
        fitted[backend] = {
            "bw_eff": round(p.bw_eff, 4), "t_layer_s": round(p.t_layer_s, 8), "t_token_s": round(p.t_token_s, 6),
            "t_recurrent_layer_s": {k: round(v, 7) for k, v in p.t_recurrent_layer_s.items()},
            "t_recurrent_token_s": {k: round(v, 9) for k, v in p.t_recurrent_token_s.items()},
            "no_dot_factor": round(p.no_dot_factor, 4),
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in rules.items()},
            **({"t_split_s": round(p.t_split_s, 6)} if p.t_split_s else {}),
            **({"pp_arch": {k: round(v, 4) for k, v in p.pp_arch.items()}} if p.pp_arch else {}),
            "flops_per_weight": {k: round(v, 3) for k, v in sorted(p.flops_per_weight.items())},
            "pp_eff": {k: round(v, 5) for k, v in sorted(p.pp_eff.items())},
            "peak": PEAK[backend],
            "source": f"fitted by benchmarks/fit_classes.py on {len(samples)} rows ({', '.join(cats)}) on {dt.date.today()}",
            "in_sample_mape": {k: round(statistics.fmean(v), 4) for k, v in sorted(ins.items())},
            "lofo_mape": {k: round(statistics.fmean(v), 4) for k, v in lo.items()},
            "lofo_held_out": held,
        }
    if args.write and fitted:
        path = DB / "speed_params.json"
        doc = json.loads(path.read_text())
        doc["backends"] = {**doc["backends"], **fitted}
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
