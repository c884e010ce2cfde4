"""Build device_db/devices.csv from the curated facts in shared/data (run by hand, output committed).

    python device_db/import_shared.py [../shared/data]

Every output row keeps the source and verification text of the row it came
from. Values the import had to compute are listed in the `derived` column:
a GPU-core variant's FLOPS scaled by its core count, x86 memory setups'
bandwidth from transfer rate x bus width.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ["id", "name", "kind", "chip", "family", "year", "release", "ram_gb", "mem_type", "bus_bits", "bw_gbps",
           "gpu_cores", "fp32_tflops", "fp16_tflops", "os", "backend", "source", "verification", "derived", "notes",
           "cpu", "cpu_isa", "npu", "backends"]
# facts the shared tables lack, curated here with their own sources: new devices (extra_devices.csv, every
# column) and CPU / NPU / GPU-FLOPS facts of devices already listed (chip_facts.csv, matched by id)
EXTRA, FACTS = HERE / "extra_devices.csv", HERE / "chip_facts.csv"
FACT_COLUMNS = ("cpu", "cpu_isa", "npu", "fp32_tflops", "fp16_tflops", "bw_gbps")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("+", " plus")).strip("-")


def first_number(cell: str) -> float | None:
    m = re.search(r"\d+(?:\.\d+)?", cell or "")
    return float(m.group()) if m else None


def first_month(cell: str) -> str:
    """'2023-10 (China) / 2024-02 (global)' -> '2023-10' (the first date given; the cell stays in notes)."""
    m = re.search(r"(\d{4})-(\d{2})", cell or "")
    return f"{m.group(1)}-{m.group(2)}" if m else ""


def ram_options(cell: str) -> list[int]:
    text = re.sub(r"\([^)]*\)", "", cell or "")
    vals = sorted({int(x) for x in re.findall(r"\d+", text)})
    return [v for v in vals if 1 <= v <= 1024]


def per_variant(cell: str) -> dict[int, float]:
    """'410 (32c) / 546 (40c)' -> {32: 410.0, 40: 546.0}."""
    return {int(c): float(v) for v, c in re.findall(r"(\d+(?:\.\d+)?)\s*\((\d+)c\)", cell or "")}


def backend_for(family: str, name: str) -> str:
    if family.startswith("Apple"):
        return "metal"
    if family in ("NVIDIA GPU", "NVIDIA DC", "Jetson", "NVIDIA SoC"):
        return "cuda"
    if family in ("Snapdragon", "Dimensity"):
        return "mobile-gpu"
    if family == "AMD APU":
        return "vulkan"
    return "cpu"


def backends_for(r: dict) -> str:
    """The llama.cpp / platform backend classes a device runs, its default first (what the usual app picks).

    Android apps built on llama.cpp run on the CPU unless asked; the OpenCL backend is written for Adreno GPUs
    (ggml-opencl.cpp loads Adreno kernels), the Hexagon backend needs HTP v73 or later (ggml-hexagon.cpp caps
    lower versions); ROCm needs RDNA2 or later; SYCL runs Intel's Arc and Xe GPUs (docs/backend/SYCL.md); a discrete card's host CPU is not part of the card.
    """
    fam, name, kind, gpu = r.get("family", ""), r.get("name", ""), r.get("kind", ""), str(r.get("gpu_cores", ""))
    text = f"{name} {gpu} {r.get('notes', '')}".lower()
    if fam.startswith("Apple"):
        return "metal/cpu/mlx/mlc"
    if fam == "Snapdragon" or "adreno" in text:
        m = re.search(r"hexagon v(\d+)", f"{r.get('npu', '')} {gpu}".lower())
        hexagon = ["hexagon"] if m and int(m.group(1)) >= 73 else []
        return "/".join(["cpu", "opencl"] + hexagon + ["vulkan", "mlc"])
    if fam in ("Dimensity", "Tensor", "Exynos"):
        return "cpu/vulkan/mlc"
    if fam in ("Jetson", "NVIDIA SoC") or "jetson" in name.lower():
        return "cuda/cpu/vulkan"
    if fam in ("NVIDIA GPU", "NVIDIA DC") or r.get("backend") == "cuda":
        return "cuda/vulkan"
    if fam in ("AMD GPU", "Intel GPU"):
        rocm = fam == "AMD GPU" and not re.search(r"\brx (4|5)\d0\b|polaris|vega", text)
        return "vulkan/rocm" if rocm else ("vulkan/sycl" if fam == "Intel GPU" else "vulkan")
    if fam == "AMD APU" or "strix halo" in text:
        return "vulkan/rocm/cpu"
    if "radeon" in text and (kind != "cpu" or r.get("fp32_tflops")):  # an APU's integrated Radeon with its rate known:
        # llama.cpp's Vulkan backend, or the CPU (a CPU entry: CPU first)
        return "cpu/vulkan" if kind == "cpu" else "vulkan/cpu"
    if "snapdragon x" in text:  # Windows/Linux on Snapdragon: Adreno X1 through OpenCL (docs/backend/OPENCL.md)
        return "cpu/opencl"
    return "cpu"


def chip_rows(specs: Path) -> list[dict]:
    rows = []
    for r in csv.DictReader(specs.open()):
        name, fam = r["device"].strip(), r["family"].strip()
        cores = [int(x) for x in r["gpu_cores"].split("/")] if re.fullmatch(r"\d+(/\d+)*", r["gpu_cores"].strip()) else []
        bw_var = per_variant(r["bw_GBps"])
        base = {
            "name": name, "kind": "gpu" if fam in ("NVIDIA GPU", "NVIDIA DC") else ("sbc" if fam == "SBC" else "chip"),
            "chip": "", "family": fam, "year": first_number(r["year"]) and int(first_number(r["year"])),
            "ram_gb": "/".join(str(x) for x in ram_options(r["ram_options_GB"])), "mem_type": r["mem_type"],
            "bus_bits": r["bus_bits"], "os": "", "backend": backend_for(fam, name), "source": r["source"],
            "verification": r["verification"], "notes": r["notes"],
        }
        fp32, fp16 = first_number(r["fp32_TFLOPS"]), first_number(r["fp16_TFLOPS"])
        if len(cores) > 1:
            top = max(cores)
            for c in cores:
                derived = []
                bw = bw_var.get(c, first_number(r["bw_GBps"]) if not bw_var else None)
                f32 = fp32 * c / top if fp32 else None
                f16 = fp16 * c / top if fp16 else None
                if c != top and (fp32 or fp16):
                    derived.append(f"fp32/fp16 scaled from the {top}-core figure by cores")
                rows.append({**base, "id": f"{slug(name)}-{c}c", "name": f"{name} ({c}-core GPU)", "gpu_cores": c,
                             "bw_gbps": bw, "fp32_tflops": f32 and round(f32, 3), "fp16_tflops": f16 and round(f16, 3),
                             "derived": "; ".join(derived)})
        else:
            rows.append({**base, "id": slug(name), "gpu_cores": cores[0] if cores else r["gpu_cores"],
                         "bw_gbps": first_number(r["bw_GBps"]), "fp32_tflops": fp32, "fp16_tflops": fp16, "derived": ""})
    return rows


def _chip_for(soc: str, chips: list[dict]) -> dict | None:
    soc_l = re.sub(r"\((g\d)\)", r"\1", soc.lower().replace(" for galaxy", ""))  # "Google Tensor (G1)"
    best, best_stem = None, ""
    for c in chips:  # the longest chip name the SoC text holds ("Snapdragon 8 Elite Gen 5" over "Snapdragon 8 Elite")
        stem = c["name"].split(" (")[0].lower().replace("qualcomm ", "")
        if stem and stem in soc_l and len(stem) > len(best_stem):
            best, best_stem = c, stem
    if best is None:
        return None
    stem = best["name"].split(" (")[0]
    variants = [c for c in chips if c["name"].split(" (")[0] == stem and isinstance(c.get("gpu_cores"), int)]
    m = re.search(r"(\d+)-core gpu", soc_l)
    if m:
        for c in variants:
            if c["gpu_cores"] == int(m.group(1)):
                return c
    # unspecified: the largest GPU variant (the row's notes keep the SoC text)
    return max(variants, key=lambda c: c["gpu_cores"]) if variants else best


def device_rows(phones: Path, chips: list[dict]) -> list[dict]:
    rows = []
    for r in csv.DictReader(phones.open()):
        name = r["device"].strip()
        chip = _chip_for(r["soc"], chips)
        os_name = r["os"].split(" (")[0].strip()
        kind = "phone" if os_name in ("iOS", "Android") else "tablet" if os_name == "iPadOS" else \
            "sbc" if "Raspberry" in name else "board" if "Jetson" in name else "laptop"
        bw_cell = r["peak_bw_GBps"]
        bw = first_number(bw_cell)
        derived = []
        if bw is None and chip and chip.get("bw_gbps"):
            bw = chip["bw_gbps"]
            derived.append(f"bandwidth from chip row {chip['id']}")
        rows.append({
            "id": slug(name), "name": name, "kind": kind, "chip": chip["id"] if chip else "",
            "family": chip["family"] if chip else "", "year": first_number(r["release"]) and int(first_number(r["release"])),
            "release": first_month(r["release"]),
            "ram_gb": "/".join(str(x) for x in ram_options(r["ram_GB"])), "mem_type": r["mem_type"], "bus_bits": "",
            "bw_gbps": bw, "gpu_cores": chip["gpu_cores"] if chip else "",
            "fp32_tflops": chip["fp32_tflops"] if chip else None, "fp16_tflops": chip["fp16_tflops"] if chip else None,
            "os": os_name,
            "backend": chip["backend"] if chip else ("cuda" if "Jetson" in name else "metal" if os_name in ("iOS", "iPadOS", "macOS") else "cpu"),
            "source": r["source"], "verification": r["verification"],
            "derived": "; ".join(derived + (["FLOPS from chip row " + chip["id"]] if chip and chip.get("fp32_tflops") else [])),
            "notes": f"SoC: {r['soc']}; bandwidth cell: {bw_cell}; release cell: {r['release']}",
        })
    return rows


def x86_rows() -> list[dict]:
    """Common PC memory setups: bandwidth = MT/s x bus bytes (theoretical peak)."""
    out = []
    for rid, name, mt, bits, kind in (
        ("pc-ddr4-3200-dual", "PC, DDR4-3200 dual channel", 3200, 128, "desktop"),
        ("pc-ddr5-5600-dual", "PC, DDR5-5600 dual channel", 5600, 128, "desktop"),
        ("pc-ddr5-6400-dual", "PC, DDR5-6400 dual channel", 6400, 128, "desktop"),
        ("laptop-lpddr5-6400", "Laptop, LPDDR5-6400 128-bit", 6400, 128, "laptop"),
        ("laptop-lpddr5x-7500", "Laptop, LPDDR5X-7500 128-bit", 7500, 128, "laptop"),
        ("laptop-lpddr5x-8533", "Laptop, LPDDR5X-8533 128-bit", 8533, 128, "laptop"),
    ):
        out.append({"id": rid, "name": name, "kind": kind, "chip": "", "family": "x86 PC", "year": "",
                    "ram_gb": "8/16/32/64", "mem_type": name.split(", ")[1].split(" ")[0], "bus_bits": bits,
                    "bw_gbps": round(mt * bits / 8 / 1000, 1), "gpu_cores": "", "fp32_tflops": None, "fp16_tflops": None,
                    "os": "Linux", "backend": "cpu", "source": "JEDEC transfer rate x bus width (arithmetic)",
                    "verification": "derived", "derived": "bw_gbps = MT/s x bus bytes", "notes": "theoretical peak; CPUs reach 60-80 % of it"})
    return out


def _read(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.exists() else []


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "data"
    chips = chip_rows(data / "device_specs.csv")
    extra = _read(EXTRA)
    by_id = {c["id"]: c for c in chips}
    rows = list(chips)
    for d in device_rows(data / "phones_and_boards.csv", chips + [r for r in extra if r["kind"] == "chip"]) + x86_rows():
        if d["id"] in by_id:  # a board listed in both files: one row, both sources
            c = by_id[d["id"]]
            c.update({"kind": d["kind"], "os": d["os"], "ram_gb": c["ram_gb"] or d["ram_gb"]})
            c["source"] += " | phones_and_boards.csv: " + d["source"]
            c["notes"] += " | " + d["notes"]
            continue
        by_id[d["id"]] = d
        rows.append(d)
    for r in extra:
        if r["id"] in by_id:
            raise SystemExit(f"extra_devices.csv: {r['id']} is already in shared/data")
        by_id[r["id"]] = r
        rows.append(r)
    for f in _read(FACTS):
        if f["id"] not in by_id:
            raise SystemExit(f"chip_facts.csv: no device {f['id']}")
        r = by_id[f["id"]]
        for k in FACT_COLUMNS:
            if f.get(k):
                r[k] = f[k]
        r["source"] = f"{r['source']} | {', '.join(k for k in FACT_COLUMNS if f.get(k))}: {f['source']} ({f['verification']})"
    for d in rows:  # phones and boards take their chip's facts
        chip = by_id.get(d.get("chip") or "")
        if chip is not None and chip is not d:
            for k in ("cpu", "cpu_isa", "npu"):
                d[k] = d.get(k) or chip.get(k, "")
            for k in ("fp32_tflops", "fp16_tflops"):
                d[k] = d.get(k) or chip.get(k)
    for d in rows:
        d["backends"] = d.get("backends") or backends_for(d)
    for c in rows:  # a chip asked for by name: the RAM its phones in this database come with
        if c.get("kind") == "chip" and not c.get("ram_gb"):
            opts = sorted({int(x) for d in rows if d.get("chip") == c["id"] for x in str(d.get("ram_gb") or "").split("/") if x})
            if opts:
                c["ram_gb"] = "/".join(map(str, opts))
                c["derived"] = "; ".join(x for x in (c.get("derived"), "RAM options: those of the phones listed with this chip") if x)
    with (HERE / "devices.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    print(f"wrote {len(rows)} devices ({len(chips)} chip rows)")


if __name__ == "__main__":
    main()
