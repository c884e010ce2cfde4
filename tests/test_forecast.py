"""`fitcheck forecast`: class trends from device_db, the forecast year and interval, the seed's claims."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from fitcheck.errors import FitcheckError
from fitcheck.forecast import CLASSES, SEED_CLAIMS, forecast, parse_month

from .conftest import run_cli


@pytest.fixture(scope="module")
def phones_7b() -> dict:
    r = run_cli("forecast", "--class", "phone-flagship", "--size", "7b", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_phone_forecast_prints_a_year_an_interval_and_three_claims(phones_7b):
    d = phones_7b
    assert re.fullmatch(r"\d{4}-\d{2}", d["year_month"])
    lo, hi = d["interval"]
    assert lo <= d["year"] and (hi is None or d["year"] <= hi)
    assert [c["size"] for c in d["claims"]] == [s for s, _, _ in SEED_CLAIMS]
    assert all(c["deciding"] for c in d["claims"])


def test_trends_are_log_linear_fits_of_the_listed_devices(phones_7b):
    d = phones_7b
    pts = [(p["release_year"], p["bw_gbps"]) for p in d["devices"] if p["decode_tps"]]
    slope, intercept = np.polyfit([x for x, _ in pts], np.log([y for _, y in pts]), 1)
    bw = d["trends"]["bandwidth"]
    assert bw["n"] == len(pts)
    assert math.isclose(bw["slope_per_year"], slope, rel_tol=1e-6)
    assert math.isclose(bw["intercept"], intercept, rel_tol=1e-6)


def test_forecast_year_is_where_both_trends_clear_the_need(phones_7b):
    d = phones_7b
    mem, dec = d["trends"]["usable_memory"], d["trends"]["decode"]
    at = lambda tr, t: math.exp(tr["intercept"] + tr["slope_per_year"] * t)  # noqa: E731
    need_gb = d["needed_bytes"] / 1e9 / 0.9
    y = d["year"]
    assert at(mem, y + 1e-6) >= need_gb * 0.999 and at(dec, y + 1e-6) >= d["target_tps"] * 0.999
    assert at(mem, y - 0.05) < need_gb or at(dec, y - 0.05) < d["target_tps"]  # and not earlier


def test_claim_verdicts_follow_the_devices_released_by_the_claimed_month():
    for size, by, _ in SEED_CLAIMS:
        r = forecast("phone-flagship", size, with_claims=False)
        runners = [p for p in r.devices if p.release_year <= parse_month(by) and p.runs]
        claim = next(c for c in forecast("phone-flagship", "7b").claims if c.size == size)
        assert claim.supported == bool(runners)
        if runners:
            assert claim.first_runner == runners[0].name
            assert all(x["runs"] for x in claim.deciding)


def test_iphones_alone_do_not_run_7b_within_the_ios_app_limit():
    r = forecast("iphone", "7b", with_claims=True)
    seven = next(c for c in r.claims if c.size == "7b")
    released = sum(p.release_year <= parse_month("2025-03") for p in r.devices)
    assert not seven.supported and seven.by_platform == {"iOS": f"none of {released} released"}
    assert all(p.verdict != "fits" for p in r.devices if p.name.startswith("iPhone 14 Pro") or p.name == "iPhone 15")


def test_as_of_uses_only_devices_released_by_then():
    r = forecast("phone-flagship", "4b", as_of="2023-06", with_claims=False)
    assert r.devices and all(p.release_year <= parse_month("2023-06") for p in r.devices)
    assert len(r.devices) < len(forecast("phone-flagship", "4b", with_claims=False).devices)


@pytest.mark.parametrize("cls", sorted(set(CLASSES) - {"apple-m-ultra"}))
def test_every_class_forecasts_a_small_model(cls):
    r = forecast(cls, "1.8b", "Q4_K_M", 5.0, with_claims=False)
    assert r.year is not None and len(r.devices) >= 3 and r.trends["bandwidth"].slope_per_year != 0


def test_plot_is_a_valid_png(tmp_path):
    import matplotlib.image as mpimg

    out = tmp_path / "f.png"
    r = run_cli("forecast", "--class", "apple-m-base", "--size", "8b", "--plot", str(out), timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(out)
    assert img.shape[0] > 300 and img.shape[1] > 600 and img.std() > 0.05  # a drawn figure, not a blank one


@pytest.mark.parametrize("args, words", [
    (["--class", "tv-box"], "unknown device class 'tv-box'"),
    (["--class", "apple-m-ultra", "--as-of", "2024"], "a trend needs at least 3 devices"),
    (["--target-tps", "0"], "--target-tps must be"),
    (["--target-tps", "nan"], "--target-tps must be"),
    (["--class", "iphone", "--size", "70b"], "does not run llama-3.1-70b"),
    (["--as-of", "next year"], "--as-of must be YYYY"),
    (["--quant", "Q9_K"], "unknown quantization"),
    (["--config", "cheapest"], "--config must be"),
])
def test_bad_input_is_one_line_and_non_zero(args, words, tmp_path):
    plot = tmp_path / "never.png"
    r = run_cli("forecast", *args, "--plot", str(plot))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and words in r.stderr and "Traceback" not in r.stderr
    assert not plot.exists() and not list(tmp_path.iterdir())


def test_bad_plot_path_fails_before_anything_is_written(tmp_path):
    r = run_cli("forecast", "--plot", str(tmp_path / "x.jpg"))
    assert r.returncode == 1 and "PNG" in r.stderr and not list(tmp_path.iterdir())


def test_forecast_errors_are_fitcheck_errors():
    with pytest.raises(FitcheckError):
        forecast("apple-m-ultra", "7b", as_of="2023")
