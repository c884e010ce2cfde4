"""A newcomer's first day: devices named as people say them, one unit, 80 columns, one-line errors, honest answers.

Every case runs the real CLI entry point in this process (`run_cli`, 80 columns unless said).
"""

from __future__ import annotations

import json
import re

import pytest

from fitcheck.calibration.synth import SynthModel, write_synthetic
from fitcheck.device.names import resolve
from fitcheck.errors import DeviceError

from .conftest import run_cli


@pytest.mark.parametrize("said, device_id, ram_gb", [
    ("samsung-galaxy-s24", "samsung-galaxy-s24", 8),  # its own id: the S24, not the S24+
    ("Galaxy S24 8GB", "samsung-galaxy-s24", 8),
    ("Galaxy S24+", "samsung-galaxy-s24-plus", 12),
    ("Galaxy S23", "samsung-galaxy-s23-s23-plus", 8),
    ("MacBook Air M1 16GB", "macbook-air-13-m1", 16),
    ("Raspberry Pi 5 8GB", "raspberry-pi-5", 8),
    ("Pi 5 8GB", "raspberry-pi-5", 8),
    ("raspberry-pi-5:8", "raspberry-pi-5", 8),
    ("RTX 4090", "nvidia-geforce-rtx-4090", 24),
    ("iPhone 15 Pro", "iphone-15-pro", 8),
    ("iPhone 15", "iphone-15", 6),
    ("Snapdragon 8 Gen 2", "qualcomm-snapdragon-8-gen-2", 8),
    ("M1 Max 32-core", "apple-m1-max-32c", 32),
    ("Jetson Orin Nano 8GB", "nvidia-jetson-orin-nano-8gb", 8),  # "8GB" is part of this name, not a RAM choice
])
def test_device_names_as_people_say_them(said, device_id, ram_gb):
    c = resolve(said)
    assert (c.device.id, c.ram_gb) == (device_id, ram_gb)


def test_ambiguity_lists_the_choices_and_how_to_pick():
    with pytest.raises(DeviceError) as e:
        resolve("Jetson Orin")
    assert "nvidia-jetson-orin-nano-8gb" in str(e.value) and "nvidia-jetson-agx-orin-64gb" in str(e.value) \
        and "add words" in str(e.value)
    with pytest.raises(DeviceError, match="comes with 2/4/8/16 GB, not 3 GB"):
        resolve("Pi 5 3GB")
    with pytest.raises(DeviceError, match="did you mean"):
        resolve("iphnoe 15 pro")


def test_the_ram_option_used_is_named_with_the_others():
    r = run_cli("estimate", "-m", "7b", "-d", "Raspberry Pi 5")
    assert r.returncode == 0, r.stderr
    assert "2 GB, the smallest of 2/4/8/16 GB" in " ".join(r.stdout.split())
    d = json.loads(run_cli("estimate", "-m", "7b", "-d", "Pi 5 8GB", "--json").stdout)
    assert d["device"]["ram_gb"] == 8 and "also sold with 2/4/16 GB" in d["device"]["ram_choice"]
    assert d["fit"]["verdict"] == "fits"  # 7B Q4_K_M in 8 GB; the smallest option would say no


def test_one_unit_gb_everywhere():
    est = run_cli("estimate", "-m", "7b", "-q", "Q4_0", "-d", "iPhone 15", "--ctx", "2048")
    adv = run_cli("advise", "-s", "7b", "-d", "iPhone 15", "--ctx", "2048")
    for r in (est, adv):
        assert r.returncode == 0, r.stderr
        assert not re.search(r"\b(GiB|MiB|KiB)\b", r.stdout), r.stdout
        assert "3.1 GB usable" in r.stdout  # the same figure in both
    d = json.loads(run_cli("estimate", "-m", "1.8b", "--memory-gb", "8", "--json").stdout)
    assert d["fit"]["usable_bytes"] == 8_000_000_000  # --memory-gb is GB, as printed


def test_no_speed_for_a_setup_that_does_not_fit():
    r = run_cli("estimate", "-m", "7b", "-d", "iPhone 15")
    assert "does not fit — killed" in r.stdout and "speed: decode" not in r.stdout  # ways out may page, said apart
    d = json.loads(run_cli("estimate", "-m", "7b", "-d", "iPhone 15", "--json").stdout)
    assert d["speed"] is None
    d = json.loads(run_cli("-d", "iPhone 15", "--json").stdout)
    for row in d["rows"]:
        if row["verdict"] == "killed":
            assert row["decode_tps"] is None and row["prefill_tps"] is None


def test_unknown_is_said_and_times_are_readable(tmp_path):
    # a saved profile whose bandwidth probe failed: its speed is unknown, never a number or "runs: no"
    prof = {"schema": "fitcheck-profile", "version": 1, "memory": {"available_bytes": 8 << 30, "limit_bytes": 16 << 30},
            "bandwidth": {"status": "error", "error": "probe failed"}}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(prof))
    r = run_cli("estimate", "-m", "1.8b", "-d", str(p))
    assert r.returncode == 0 and "speed: unknown" in r.stdout and "probe" in r.stderr
    r = run_cli("estimate", "-m", "qwen2.5-0.5b", "-q", "Q4_0", "-d", "RTX 4090")
    assert "first token after" in r.stdout and "0.0 s" not in r.stdout


@pytest.mark.parametrize("args", [
    ("models",), ("devices",), ("devices", "phone"), ("-d", "iPhone 15"), ("-d", "MacBook Air M1 16GB"),
    ("estimate", "-m", "7b", "-d", "Galaxy S24 8GB"), ("advise", "-s", "4b", "-d", "Pi 5 8GB"),
])
def test_fits_80_columns(args):
    r = run_cli(*args, width=80)
    assert r.returncode == 0, r.stderr
    table_lines = [ln for ln in r.stdout.splitlines() if ln[:1] in "┏┃┡│└"]
    assert table_lines and all(len(ln) <= 80 for ln in table_lines), max(table_lines, key=len)


def test_ids_whole_and_words_unsplit_at_80_columns():
    from fitcheck.model.catalog import entries

    out = run_cli("models", width=80).stdout
    for mid in entries():
        assert re.search(rf"│ {re.escape(mid)}\s", out), mid  # every id whole on one line
    out = run_cli("devices", width=80).stdout
    kinds = {ln.split("│")[2].strip() for ln in out.splitlines() if ln.startswith("│")}
    assert kinds <= {"chip", "cpu", "phone", "sbc", "board", "gpu", "tablet", "laptop", "desktop", "handheld", ""}, kinds
    words = {w for ln in out.splitlines() if ln.startswith("│") for w in ln.split("│")[1].split()}
    import device_db

    names = {w for d in device_db.devices().values() for w in d.name.split()}
    assert words <= names, words - names  # no word of a name was split across lines


def test_main_table_title_fits_120_columns():
    r = run_cli("-d", "iPhone 15", width=120)
    assert all(len(ln) <= 120 for ln in r.stdout.splitlines() if not ln.startswith(("1.8B", "4B", "7B", "'yes'")))


def test_no_raw_byte_counts_or_absolute_paths(tmp_path, smollm2_path):
    out = run_cli("inspect", str(smollm2_path)).stdout
    assert str(smollm2_path.parent) not in out and not re.search(r"\d{7,}", out.replace(",", ""))
    out = run_cli("scan", "--no-stores", str(smollm2_path.parent), "--memory-gb", "8").stdout
    assert str(smollm2_path.parent) not in out


def test_yes_means_fits_and_fast_enough():
    fast = json.loads(run_cli("-d", "MacBook Air M1 16GB", "--json").stdout)
    assert fast["answers"][0]["verdict"] == "yes" and fast["target_tps"] == 5
    slow = json.loads(run_cli("-d", "MacBook Air M1 16GB", "--target-tps", "500", "--json").stdout)
    a = slow["answers"][2]
    assert a["verdict"] == "slow" and "fits, but slow" in a["text"] and "500 t/s target" in a["text"]
    rows = [r for r in slow["rows"] if r["size"] == "7b" and r["verdict"] == "fits"]
    assert a["quant"] == max(rows, key=lambda r: r["decode_tps"])["quant"]  # the one that comes closest
    no = json.loads(run_cli("-d", "iPhone 15", "--json").stdout)
    assert no["answers"][2]["verdict"] == "no"


@pytest.mark.parametrize("args, code, words", [
    (("estimate", "--bogus"), 2, "No such option: --bogus"),
    (("estimate", "-m", "1.8b", "--ctx", "abc"), 2, "Invalid value for '--ctx'"),
    (("estimate",), 2, "Missing option '--model'"),
    (("nosuch",), 2, "No such command 'nosuch'"),
    (("estimate", "-m", "1.8b", "--backend", "/x"), 1, "unknown backend '/x'"),
    (("estimate", "-m", "1.8b", "--memory-gb", "-3"), 1, "--memory-gb must be a size in GB"),
    (("estimate", "-m", "1.8b", "-d", "Snapdragon 8 Gen"), 1, "matches 4 devices"),
    (("estimate", "-m", "nosuchmodel"), 1, "unknown model 'nosuchmodel'"),
    (("-d", "iPhone 15", "--target-tps", "0"), 1, "--target-tps must be a speed between"),
    (("advise",), 1, "exactly one of --size or --model"),
])
def test_errors_are_one_line(args, code, words):
    r = run_cli(*args)
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fitcheck: error: ") and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "╭" not in r.stderr


def test_quantized_kv_that_cannot_hold_the_rows_is_an_error_not_a_traceback(tmp_path):
    (path,) = write_synthetic(tmp_path / "hd48.gguf", SynthModel(n_embd=192, n_head=4, n_head_kv=1))
    r = run_cli("estimate", "-m", str(path), "--kv-type", "q4_0", "--flash-attn", "--memory-gb", "8")
    assert r.returncode == 1 and "KV cache needs rows in multiples of 32" in r.stderr


def test_a_profile_whose_memory_probe_failed_is_not_used(fitcheck_home):
    from fitcheck.device import profile

    profile.save({"schema": profile.SCHEMA, "version": profile.SCHEMA_VERSION, "created": "2026-11-26T00:00:00+00:00",
                  "memory": {"status": "error", "reason": "probe failed"}, "warnings": []})
    r = run_cli("estimate", "-m", "1.8b")
    assert r.returncode == 1 and "no memory measurement (probe failed)" in r.stderr


def test_what_people_write_is_accepted_or_named_exactly():
    # a short context alone: the default prompt follows it
    d = json.loads(run_cli("estimate", "-m", "1.8b", "--ctx", "128", "-d", "iPhone 15", "--json").stdout)
    assert d["speed"]["prefill_tps"] > 0 and "128 tokens" in run_cli("estimate", "-m", "1.8b", "--ctx", "128", "-d", "iPhone 15").stdout
    # a profile file that is not there is a missing file, not an unprobed machine
    r = run_cli("estimate", "-m", "1.8b", "-d", "./nope.json")
    assert r.returncode == 1 and "no such profile file" in r.stderr and "run `fitcheck probe`" not in r.stderr
    # a device class in other words
    from fitcheck.forecast import class_named

    assert class_named("flagship-phones") == "phone-flagship" and class_named("GeForce") == "nvidia-consumer-gpu"
    r = run_cli("forecast", "--class", "flagship-phones", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["device_class"] == "phone-flagship", r.stderr


def test_an_estimate_and_its_help_fit_an_80_column_terminal():
    from rich.cells import cell_len

    for args in (("estimate", "-m", "7b", "-d", "Galaxy S20 12GB"), ("estimate", "-m", "7b", "-d", "iphone 15"),
                 ("estimate", "--help")):
        out = run_cli(*args).stdout
        long = [line for line in out.splitlines() if cell_len(line) > 80 and "://" not in line]
        assert out and not long, long
    assert len(run_cli("estimate", "--help").stdout.splitlines()) < 130
