"""The README's test command with busy loops pinned on every core beside it (and once quiet, with --quiet):
every test must pass whatever else runs. Prints the wall time and pytest's summary line.

    python benchmarks/tests_under_load.py [--quiet] [-- PYTEST ARGS]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quiet", action="store_true", help="no busy loops")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fitcheck-tests-under-load.txt"),
                    help="pytest's whole output (the reasons of any failure)")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    loops = [] if args.quiet else [subprocess.Popen(["taskset", "-c", str(c), "sh", "-c", "while :; do :; done"])
                                   for c in range(os.cpu_count() or 1)]
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", *args.pytest_args], cwd=ROOT,
                           capture_output=True, text=True)
    finally:
        for p in loops:
            p.kill()
    took = time.monotonic() - t0
    args.out.write_text(r.stdout + r.stderr)
    tail = [ln for ln in r.stdout.strip().splitlines() if ln.strip()]
    failed = [ln for ln in tail if ln.startswith(("FAILED", "ERROR"))]
    print(f"{'quiet' if args.quiet else f'{len(loops)} busy loops'}: {took / 60:.1f} min, exit {r.returncode}: "
          f"{tail[-1] if tail else r.stderr[-300:]}")
    for ln in failed:
        print("  " + ln)
    print(f"pytest's output: {args.out}")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
