"""Device and model names as people write them: how many fitcheck reads right, and how fast.

    python benchmarks/names_resolution.py [--devices benchmarks/data/names_devices.csv]
                                          [--models benchmarks/data/names_models.csv] [--show-misses]

A device name is read right when it resolves to a device whose RAM option used is within 12 % of the memory the
name implies (`expected_ram_gb`; a row without one counts when it resolves at all); a model name when the catalog
entry it resolves to has a published parameter count within 12 % of `expected_params_b` (a generic-size answer
counts too, it says so on the answer). Printed: the share read right per kind, the misses (with --show-misses),
and the time per name (median and worst, tables already loaded). Target (issue 26): >= 95 %, < 50 ms a name.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TOLERANCE = 0.12


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def judge_device(row: dict[str, str]) -> tuple[bool, str]:
    from fitcheck.device.names import resolve
    from fitcheck.errors import FitcheckError
    from fitcheck.split import split_devices

    try:  # "2x RTX 3090", "4个80G A100": several devices, as `--device` reads them; their memory together
        cs = [resolve(part) for part, _ in split_devices(row["name"])]
    except FitcheckError as e:
        return False, str(e)[:120]
    want = row.get("expected_ram_gb", "").strip()
    ids = " + ".join(dict.fromkeys(c.device.id for c in cs)) + (f" x{len(cs)}" if len(cs) > 1 else "")
    if not want:
        return True, ids
    ram = sum(c.ram_gb or 0 for c in cs)
    ok = all(c.ram_gb for c in cs) and abs(ram / float(want) - 1) <= TOLERANCE
    return ok, f"{ids} at {ram} GB (expected {want})"


def judge_model(row: dict[str, str]) -> tuple[bool, str]:
    from fitcheck.errors import FitcheckError
    from fitcheck.model.catalog import resolve

    try:
        e, how = resolve(row["name"])
    except FitcheckError as err:
        return False, str(err)[:120]
    if not row.get("expected_params_b", "").strip():  # no published total (the list says why): resolving counts
        return True, e.id
    want = float(row["expected_params_b"])
    ok = bool(e.params_b_published) and abs(e.params_b_published / want - 1) <= TOLERANCE
    return ok, f"{e.id} ({e.params_b_published:g}B, expected {want:g}B){' — ' + how if how and '(' in how else ''}"


def run(kind: str, rows: list[dict[str, str]], judge, show: bool) -> None:
    times, good, misses = [], 0, []
    for r in rows:
        t = time.perf_counter()
        ok, what = judge(r)
        times.append(time.perf_counter() - t)
        good += ok
        if not ok:
            misses.append(f"  {r['name']!r}: {what}")
    print(f"{kind}: {good}/{len(rows)} read right ({good / len(rows):.1%}); per name {statistics.median(times) * 1e3:.2f} ms "
          f"median, {max(times) * 1e3:.1f} ms worst")
    if show:
        print("\n".join(misses))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=Path, default=HERE / "data" / "names_devices.csv")
    ap.add_argument("--models", type=Path, default=HERE / "data" / "names_models.csv")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()
    import device_db

    from fitcheck.model.catalog import entries

    from fitcheck.device.names import resolve

    t = time.perf_counter()
    device_db.devices(), entries(), resolve("RTX 4090")  # the tables and the device vocabulary, once a process
    try:  # and the search words an unknown name is matched against, and the split parser's module
        resolve("no such device")
    except Exception:
        pass
    import fitcheck.split  # noqa: F401
    print(f"tables: {len(device_db.devices())} devices, {len(entries())} models, loaded in {(time.perf_counter() - t) * 1e3:.0f} ms")
    run("devices", _rows(args.devices), judge_device, args.show_misses)
    run("models", _rows(args.models), judge_model, args.show_misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
