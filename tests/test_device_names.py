"""Device names as people write them in issues and forums: memory versions, Macs by their chip, laptops by their
GPU, model codes, several GPUs, and the words that must never change the answer (a phone's "5G", storage)."""

from __future__ import annotations

import pytest

import device_db
from fitcheck.device.names import resolve, tokens
from fitcheck.errors import DeviceError
from fitcheck.split import split_devices


@pytest.mark.parametrize("said, device_id, ram_gb", [
    ("RTX 3060 8GB", "nvidia-geforce-rtx-3060-8-gb-ga104", 8),  # the 8 GB version is a row of its own
    ("RTX 3060 12GB", "nvidia-geforce-rtx-3060-12gb", 12),
    ("Tesla V100 32 GB", None, 32),
    ("Jetson Orin NX 16GB", "nvidia-jetson-orin-nx-8gb-16gb", 16),  # a size its name lists among others
    ("Jetson AGX Orin 32GB", None, 32),
    ("M1 with 32G of RAM", "apple-m1-pro-14c", 32),  # the smallest M1 chip sold with 32 GB
    ("32 GB M2 Pro Mac mini", "mac-mini-m2-pro", 32),
    ("MacBook Pro M5 128 GB", "macbook-pro-14-16-m5-max", 128),  # the memory says which chip
    ("Samsung s21 ultra 5g sm g998b", "samsung-galaxy-s21-ultra", None),  # a model code no row has
    ("Macbook Max M3 128GB of RAM", None, 128),
    ("Lenovo Legion 5 with NVIDIA RTX 4060 Laptop GPU (8GB VRAM)", "nvidia-geforce-rtx-4060-mobile", 8),
    ("g5.2xlarge", "nvidia-a10g", 24),  # a cloud instance by its GPU (aliases.csv)
    ("AMD RYZEN AI MAX+ 395 w/ Radeon 8060S", None, None),
    ("AMD Ryzen 5 5600X 6C/12T, 30GB", "amd-ryzen-5-5600x", 30),  # cores/threads said; a CPU's memory is any size
])
def test_names_people_write(said, device_id, ram_gb):
    c = resolve(said)
    assert device_id is None or c.device.id == device_id, c
    assert ram_gb is None or c.ram_gb == ram_gb, c
    assert "max" not in said.lower() or "Max" in c.device.name


def test_words_that_are_not_memory():
    assert "5gb" not in tokens("samsung a26 5G 8Gb ram") and "8gb" in tokens("samsung a26 5G 8Gb ram")
    assert tokens("32GB 8700g minipc")[:2] == ["32gb", "8700g"]  # a Ryzen model, not 8700 GB
    assert "16gb" in tokens("MacBook Pro M1 with 16MB Ram") and "24gb" in tokens("Mac Air 24 Ram")
    assert tokens("Apple Mac Studio M3 Ultra 512GB RAM 1TB SSD").count("512gb") == 1
    assert "32gb" in tokens("orange pi 5 plus,32G内存")


def test_a_brand_word_rules_out_other_brands():
    """"Samsung M30" is no Apple M-chip with a 30-core GPU, whatever else it is."""
    try:
        c = resolve("Samsung M30")
    except DeviceError as e:
        assert "Apple" not in str(e).split("did you mean")[0]
    else:
        assert "apple" not in c.device.id
    assert "apple" in resolve("Apple M4 16GB").device.id  # the M4 chip, not NVIDIA's Tesla M4
    assert resolve("iMac M4").device.family.startswith("Apple")


def test_a_letter_glued_to_a_model_number_is_part_of_it():
    """"Pixel 6a" is not the Pixel 6: either the 6a or no answer, never the other phone."""
    for name, not_id in (("Pixel 6a", "google-pixel-6"), ("Nothing Phone 3a", "nothing-phone-3")):
        try:
            assert resolve(name).device.id != not_id
        except DeviceError:
            pass


def test_a_cpu_tier_word_is_no_model_number():
    """An Intel or Ryzen model number the database lacks stays unknown: not some i5 machine, not another Ryzen 5."""
    for name in ("Core i5-9999Q", "Ryzen 5 9990"):
        with pytest.raises(DeviceError, match="unknown device"):
            resolve(name)


def test_only_a_size_is_no_device():
    with pytest.raises(DeviceError, match="only a memory size"):
        resolve("32GB")


@pytest.mark.parametrize("said, n, one", [
    ("2 H100s", 2, "H100"), ("dual 3090s", 2, "3090"), ("4个80G A100", 4, "80G A100"), ("8*24G A10g", 8, "24G A10g"),
    ("8 Tesla V100 32 GB", 8, "Tesla V100 32 GB"), ("3 RTX 3090's", 3, "RTX 3090"), ("single A6000", 1, "A6000"),
    ("6× RTX 5090", 6, "RTX 5090"), ("14 Pro", 1, "14 Pro"), ("1080 ti", 1, "1080 ti"),
])
def test_several_gpus_as_people_count_them(said, n, one):
    parts = split_devices(said)
    assert len(parts) == n and one.lower() in parts[0][0].lower()
    if n > 1:
        assert all(resolve(part).device.kind == "gpu" for part, _ in parts)


def test_every_alias_names_a_device():
    assert all(a for d in device_db.devices().values() for a in d.aliases)
    assert resolve("X1E-78-100").device.id == "windows-linux-laptop-snapdragon-x-elite"


def test_every_device_answers_to_its_own_name_and_fits_its_memory():
    """Each of the database's devices by the name it is listed under (and without its maker's word) is itself, or a
    machine with the same facts; its usable memory is never above its physical memory."""
    from fitcheck.device.names import _facts
    from fitcheck.device.resolve import device_target

    wrong = []
    for d in device_db.devices().values():
        for name in (d.name, d.name.replace("NVIDIA ", "").replace("Samsung ", "")):
            try:
                c = resolve(name)
            except DeviceError as e:
                wrong.append((name, str(e)[:80]))
                continue
            if c.device.id != d.id and _facts(c.device) != _facts(d) and c.device.name.lower() != d.name.lower():
                wrong.append((name, c.device.id))
        for ram in d.ram_options_gb:
            assert 0 < device_target(d, ram).usable_bytes <= ram * 2 ** 30, (d.id, ram)
    assert len(wrong) <= 5, wrong  # two rows the library itself names alike (a GPU and its "A" variant) may stay


def test_one_product_line_in_several_models_is_answered_for_the_slowest_and_says_so():
    c = resolve("16GB MacBook Air")
    assert c.device.kind == "laptop" and c.ram_gb == 16 and "name one for its own answer" in c.ram_note
    slowest = min((d for d in device_db.devices().values() if d.kind == "laptop" and "MacBook Air" in d.name
                   and 16 in d.ram_options_gb), key=lambda d: d.bw_gbps or 0)
    assert c.device.bw_gbps == slowest.bw_gbps
    for different in ("14 pro", "Redmi Note 13 Pro", "snapdragon 8 gen"):  # two makers, two SoCs, or chips: a question
        with pytest.raises(DeviceError, match="add words to pick one"):
            resolve(different)
