"""The main job: `fitcheck` with no arguments answers for 1.8B, 4B and 7B."""

from __future__ import annotations

import json

import pytest

from fitcheck.answer import answer
from fitcheck.device.resolve import resolve_target
from fitcheck.model.catalog import resolve, spec_from_catalog
from fitcheck.estimator.memory import estimate_memory
from fitcheck.estimator.settings import RuntimeSettings

from .conftest import run_cli_process


def profile_with(usable_gb: float, read_gbps: float = 50.0) -> dict:
    """A device profile as `fitcheck probe` saves it, for a device with this much usable memory."""
    n = int(usable_gb * 1e9)
    return {"memory": {"available_bytes": n, "limit_bytes": n}, "bandwidth": {"status": "ok", "read_gbps": read_gbps}}


def answer_for_profile(prof: dict, **kw) -> dict:
    return answer(resolve_target("this", profile=prof), **kw)


def answer_for_device(name: str, **kw) -> dict:
    return answer(resolve_target(name), **kw)


def texts(d: dict) -> list[str]:
    return [a["text"] for a in d["answers"]]


def test_answer_picks_the_best_quant_that_fits():
    d = answer_for_profile(profile_with(6.0))
    need_7b_q8 = estimate_memory(spec_from_catalog(resolve("7b")[0], "Q8_0"), RuntimeSettings()).total_bytes
    assert need_7b_q8 > 6e9  # so 7B cannot be Q8_0 on a 6 GB device
    seven = texts(d)[2]
    assert seven.startswith("7B (Qwen2-7B): yes, ") and "Q8_0" not in seven
    assert texts(d)[0].startswith("1.8B (Qwen1.5-1.8B): yes, Q8_0")
    assert len(d["rows"]) == 3 * 7


def test_answer_says_no_with_numbers():
    d = answer_for_profile(profile_with(1.5))
    assert texts(d)[2].startswith("7B (Qwen2-7B): no — needs ") and "at Q2_K" in texts(d)[2]


def test_upper_bound_speed_scales_with_bandwidth():
    slow = answer_for_profile(profile_with(32, 10.0))["rows"][0]["decode_tps_upper_bound"]
    fast = answer_for_profile(profile_with(32, 100.0))["rows"][0]["decode_tps_upper_bound"]
    assert fast == slow * 10


@pytest.mark.slow
def test_main_job_probes_once_then_answers(fitcheck_home):
    r = run_cli_process("--json", timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [a.split(" ")[0] for a in texts(d)] == ["1.8B", "4B", "7B"]
    assert (fitcheck_home / "profile.json").exists()
    r2 = run_cli_process(timeout=120, env={"COLUMNS": "80"})  # second run reuses the saved profile
    assert r2.returncode == 0 and "7B (Qwen2-7B):" in r2.stdout
    # read in an 80-column terminal: answers and footnote wrap between words, no line runs past the edge
    from rich.cells import cell_len

    assert max(cell_len(line) for line in r2.stdout.splitlines()) <= 80


@pytest.mark.parametrize("phone", ["iphone-14-pro", "iphone-15"])
def test_seed_case_a16_phone_in_the_ios_app_limit(phone):
    # 2048 tokens: the context a phone chat app sets; the verdicts are the main job's own rows
    d = answer_for_device(phone, settings=RuntimeSettings(n_ctx=2048))
    rows = {(r["size"], r["quant"]): r for r in d["rows"]}
    assert d["device"]["os"] == "iOS" and "iOS default" in d["device"]["memory_rule"]
    for q in ("Q4_K_M", "Q4_0"):
        assert rows[("7b", q)]["verdict"] in ("killed", "tight")  # the seed saw an OOM (Metal: the weights cannot page)
    for q in ("Q4_K_M", "Q8_0"):
        assert rows[("1.8b", q)]["verdict"] == "fits"
    assert texts(d)[2].startswith("7B (Qwen2-7B): no")


def test_seed_case_macbook_air_m1_runs_7b_q4_0():
    d = answer_for_device("macbook-air-13-m1:16", sizes=("7b",), quants=("Q4_0",))
    assert d["rows"][0]["verdict"] == "fits" and d["rows"][0]["decode_tps"] > 5
