"""Device database: chips, phones, boards, Macs and PC memory setups, each fact with its source.

devices.csv is built from shared/data by import_shared.py; os_memory.csv holds
how much of its RAM one app can use per OS. A device is named by id, by name,
or fuzzily; `NAME:RAM` picks one of its RAM options (GB).
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from fitcheck.errors import UsageError

GIB = 1 << 30


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
    text = files("device_db").joinpath("devices.csv").read_text()
    out = {}
    for r in csv.DictReader(text.splitlines()):
        out[r["id"]] = Device(
            id=r["id"], name=r["name"], kind=r["kind"], chip=r["chip"], family=r["family"],
            year=int(r["year"]) if r["year"] else None, release=r["release"],
            ram_options_gb=tuple(int(x) for x in r["ram_gb"].split("/") if x),
            mem_type=r["mem_type"], bw_gbps=_float(r["bw_gbps"]), gpu_cores=r["gpu_cores"],
            fp32_tflops=_float(r["fp32_tflops"]), fp16_tflops=_float(r["fp16_tflops"]), os=r["os"],
            backend=r["backend"], source=r["source"], verification=r["verification"], derived=r["derived"],
            notes=r["notes"],
        )
    return out


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def search(query: str | None) -> list[Device]:
    """Devices whose id or name contains every word of the query."""
    if not query:
        return list(devices().values())
    words = [_norm(w) for w in query.split() if _norm(w)]
    return [d for d in devices().values() if all(w in _norm(d.id) or w in _norm(d.name) for w in words)]


def resolve(name: str) -> tuple[Device, int | None]:
    """A device by id or name (case and punctuation ignored), with an optional ':RAM' choice in GB."""
    base, _, ram = name.partition(":")
    ram_gb = None
    if ram:
        try:
            ram_gb = int(float(ram.lower().removesuffix("gb")))
        except ValueError:
            raise UsageError(f"cannot read the RAM choice {ram!r} in {name!r}; write NAME:16 for 16 GB") from None
    key = _norm(base)
    by_norm = {_norm(d.id): d for d in devices().values()} | {_norm(d.name): d for d in devices().values()}
    dev = by_norm.get(key)
    if dev is None:
        hits = search(base)
        if len(hits) == 1:
            dev = hits[0]
        else:
            pool = {d.id: d for d in devices().values()}
            near = difflib.get_close_matches(base.lower(), list(pool), n=4, cutoff=0.4) or [d.id for d in hits[:4]]
            what = f"{len(hits)} devices match" if hits else "unknown device"
            raise UsageError(f"{what} {base!r}; nearest: {', '.join(near) or 'none'} (see `fitcheck devices`)")
    if ram_gb is not None and dev.ram_options_gb and ram_gb not in dev.ram_options_gb:
        opts = "/".join(map(str, dev.ram_options_gb))
        raise UsageError(f"{dev.name} comes with {opts} GB, not {ram_gb} GB")
    return dev, ram_gb


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


OS_RESERVE_GIB = {"Linux": 1.0, "Windows": 2.0}


def usable_memory_bytes(os_name: str, ram_gb: float, entitlement: bool = False) -> tuple[int, str]:
    """Memory one app can use on `os_name` with `ram_gb` of RAM, and the rule (with source) applied."""
    os_key = {"iPadOS": "iPadOS", "iOS": "iOS", "macOS": "macOS", "Android": "Android"}.get(os_name)
    if os_key is None:
        os_key = "Windows" if os_name.startswith("Windows") else "Linux"
    rules = [r for r in os_rules() if r.os == os_key]
    mode = "entitlement" if entitlement and any(r.mode == "entitlement" for r in rules) else "default"
    rules = [r for r in rules if r.mode == mode]
    if os_key in OS_RESERVE_GIB:
        gib = max(ram_gb - OS_RESERVE_GIB[os_key], 0.5)
        return int(gib * GIB), f"{os_key}: RAM minus {OS_RESERVE_GIB[os_key]:g} GiB — {rules[0].source}"
    fixed = [r for r in rules if r.usable_gb is not None]
    if fixed:
        # nearest measured RAM size; scale by RAM ratio when the device differs from every report
        r = min(fixed, key=lambda r: abs(r.ram_gb - ram_gb))
        gb = r.usable_gb if r.ram_gb == ram_gb else min(r.usable_gb * ram_gb / r.ram_gb, ram_gb)
        how = "" if r.ram_gb == ram_gb else f" (reported for {r.ram_gb:g} GB, scaled to {ram_gb:g} GB)"
        return int(gb * 1e9), f"{os_key} {mode}: {gb:.2f} GB{how} — {r.source} [{r.tag}]"
    frac = [r for r in rules if r.usable_fraction is not None]
    r = max((r for r in frac if (r.ram_gb or 0) <= ram_gb), key=lambda r: r.ram_gb or 0)
    return int(r.usable_fraction * ram_gb * GIB), f"{os_key}: {r.usable_fraction:.2%} of RAM — {r.source} [{r.tag}]"


FAMILY_OS = {"Apple M": "macOS", "Apple A": "iOS", "Snapdragon": "Android", "Dimensity": "Android",
             "Jetson": "Linux", "SBC": "Linux", "NVIDIA SoC": "Linux", "AMD APU": "Linux", "x86 PC": "Linux"}
GPU_RESERVE_GIB = 0.5  # CUDA context and driver on a discrete card (fitcheck assumption, no source)


def device_usable_bytes(dev: Device, ram_gb: int | None = None, entitlement: bool = False) -> tuple[int, dict]:
    """Usable bytes for one app on `dev` with RAM option `ram_gb` (smallest option when not given)."""
    if not dev.ram_options_gb:
        raise UsageError(f"{dev.name} has no RAM size in the database; give --memory-gb")
    chosen = ram_gb if ram_gb is not None else min(dev.ram_options_gb)
    basis = {"device": dev.id, "device_name": dev.name, "ram_gb": chosen,
             "ram_choice": "as given" if ram_gb is not None else
             f"smallest of {'/'.join(map(str, dev.ram_options_gb))} GB (pick one with {dev.id}:RAM)",
             "device_source": dev.source, "device_verification": dev.verification}
    if dev.kind == "gpu":
        usable = int((chosen - GPU_RESERVE_GIB) * GIB)
        basis["memory_rule"] = f"discrete GPU: {chosen} GB VRAM minus {GPU_RESERVE_GIB} GiB (fitcheck assumption)"
        return usable, basis
    os_name = dev.os or FAMILY_OS.get(dev.family, "Linux")
    usable, rule = usable_memory_bytes(os_name, chosen, entitlement)
    basis["os"] = os_name
    basis["memory_rule"] = rule
    return usable, basis
