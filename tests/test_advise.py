"""`fitcheck advise`: best quality that fits and meets the target; ways out with numbers."""

from __future__ import annotations

import json

import pytest

from fitcheck.advise import CANDIDATES, advise, quality_table
from fitcheck.device.device_speed import backend_params
from fitcheck.errors import UsageError
from fitcheck.estimator.evaluate import Target
from fitcheck.estimator.speed import DeviceSpeedSpec

from .conftest import run_cli

M1 = DeviceSpeedSpec("metal", 68.25, 2.617)


def m1(usable: float) -> Target:
    """An M1 GPU with this much usable memory (the speed model's metal class)."""
    return Target("M1", int(usable), "test", M1, backend_params("metal"))


def test_quality_table_has_every_candidate_from_the_published_scoreboard():
    q = quality_table()
    for name in CANDIDATES:
        assert name in q, name
    assert q["Q8_0"]["kld_mean"] < q["Q4_K_M"]["kld_mean"] < q["Q2_K"]["kld_mean"]
    assert q["Q4_K_M"]["no_imatrix"]  # our recipes assume no importance matrix


def test_picks_highest_quality_that_fits():
    d = advise("7b", m1(16e9))
    assert d["choice"]["quant"] == "Q8_0"  # 8.8 GB fits in 16 GB with headroom
    d = advise("7b", m1(6e9))
    assert d["choice"]["quant"] in ("Q4_K_M", "Q4_K_S", "IQ4_XS", "Q5_K_S", "Q5_0")
    assert d["choice"]["total_bytes"] < 0.9 * 6e9


def test_speed_target_moves_the_choice_down():
    free = advise("7b", m1(64e9))
    fast = advise("7b", m1(64e9), target_tps=12)
    assert free["choice"]["quant"] == "F16"
    assert fast["choice"]["decode_tps"] >= 12 and fast["choice"]["kld_mean"] > free["choice"]["kld_mean"]


def test_ways_out_when_nothing_fits():
    d = advise("7b", m1(3e9))
    assert d["choice"] is None
    ways = [w["way"] for w in d["ways_out"]]
    assert any(w.startswith("smaller model:") for w in ways)
    assert all(w.get("verdict") == "fits" for w in d["ways_out"] if "total_bytes" in w)


def test_impossible_target():
    with pytest.raises(UsageError, match="--target-tps must be a speed between"):
        advise("7b", m1(16e9), target_tps=0)
    d = advise("7b", m1(64e9), target_tps=5000)
    assert d["choice"] is None and d["ways_out"][-1]["verdict"] == "killed"


def test_cli_seed_case_iphone():
    r = run_cli("advise", "-s", "1.8b", "-d", "iphone 15", "--ctx", "2048", "--ios-entitlement", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["choice"] is not None and d["choice"]["verdict"] == "fits"
    r = run_cli("advise", "-s", "7b", "-d", "iphone 15", "--ctx", "2048", "--json")
    assert json.loads(r.stdout)["choice"] is None
    r = run_cli("advise")
    assert r.returncode == 1 and "exactly one of --size or --model" in r.stderr


def test_iphone_way_out_is_the_entitlement_with_numbers():
    r = run_cli("advise", "-s", "7b", "-d", "iphone 15", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["choice"] is None
    way = next(w for w in d["ways_out"] if w["way"].startswith("the increased-memory-limit entitlement"))
    assert way["verdict"] == "fits" and way["total_bytes"] > d["usable_bytes"]  # only fits with the larger limit


def test_discrete_gpu_way_out_is_partial_offload_with_the_most_layers_that_fit():
    from fitcheck.model.catalog import resolve, spec_from_catalog
    from fitcheck.estimator.placement import SplitOptions, Unit, memory, place
    from fitcheck.estimator.settings import RuntimeSettings

    args = ("advise", "-m", "gemma-3-12b", "-d", "nvidia-geforce-rtx-3060-12gb", "--ctx", "32768")
    d = json.loads(run_cli(*args, "--host-memory-gb", "32", "--json").stdout)
    way = next(w for w in d["ways_out"] if w["way"].startswith("partial offload"))
    n, vram = way["gpu_layers"], d["usable_bytes"]
    assert 0 < n < way["n_layer"] and way["device_bytes"] <= 0.9 * vram and "-ngl" in way["command"]
    spec = spec_from_catalog(resolve("gemma-3-12b")[0], "Q4_K_M")
    units = (Unit("ram", "host", None, None, 32 * 10**9), Unit("card", "gpu", None, None, vram))
    ngl = int(way["command"].split("-ngl ")[1].split()[0])
    more = memory(spec, RuntimeSettings(n_ctx=32768), place(spec, units, SplitOptions(n_gpu_layers=ngl + 1)))
    assert more[1].total_bytes > 0.9 * vram  # one more layer would not fit
    small_host = json.loads(run_cli(*args, "--host-memory-gb", "4", "--json").stdout)
    assert not any(w["way"].startswith("partial offload") for w in small_host["ways_out"])
