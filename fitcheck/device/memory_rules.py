"""How much memory one app may use on a device: the OS rules of device_db/os_memory.csv applied.

Usable memory is what the verdict compares with; each rule carries its source.
"""

from __future__ import annotations

from device_db import Device, os_rules

GIB = 1 << 30


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


def os_of(dev: Device) -> str:
    """The OS an app runs under on `dev` ('GPU' for a discrete card: its VRAM is the limit)."""
    if dev.kind == "gpu":
        return "GPU"
    return dev.os or FAMILY_OS.get(dev.family, "Linux")


def device_usable_bytes(dev: Device, ram_gb: int, entitlement: bool = False) -> tuple[int, str]:
    """Usable bytes for one app on `dev` with `ram_gb` of RAM, and the rule applied (with its source)."""
    if dev.kind == "gpu":
        usable = int((ram_gb - GPU_RESERVE_GIB) * GIB)
        return usable, f"discrete GPU: {ram_gb} GB VRAM minus {GPU_RESERVE_GIB} GiB for the CUDA context (fitcheck assumption)"
    return usable_memory_bytes(os_of(dev), ram_gb, entitlement)
