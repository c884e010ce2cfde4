"""Speed model and backtest: published accuracy, unresolved rows, bad CSVs, physical behaviour."""

from __future__ import annotations

import csv
import json
from importlib.resources import files

import pytest

from fitcheck.backtest import backtest
from fitcheck.device.device_speed import backend_params
from fitcheck.model.catalog import entries, spec_from_catalog
from fitcheck.errors import UsageError
from fitcheck.estimator.speed import DeviceSpeedSpec, active_weights, estimate_speed, weight_class

from .conftest import run_cli

DEV_CSV = str(files("device_db").joinpath("published_benchmarks_dev.csv"))


@pytest.fixture(scope="module")
def dev_backtest():
    return backtest(DEV_CSV)


def test_published_accuracy_targets(dev_backtest):
    s = dev_backtest["summary"]
    assert s["apple_metal_4167/decode"]["mape"] <= 0.10 and s["apple_metal_4167/decode"]["n"] >= 40
    assert s["apple_metal_4167/prefill"]["mape"] <= 0.20
    assert s["cuda_15013/decode"]["mape"] <= 0.15


def test_no_row_is_dropped(dev_backtest):
    with open(DEV_CSV) as f:
        ids = [r["id"] for r in csv.DictReader(f)]
    assert [r["id"] for r in dev_backtest["rows"]] == ids
    for r in dev_backtest["rows"]:
        assert ("unresolved" in r) != ("predicted" in r)
        if "unresolved" in r:
            assert r["unresolved"]  # a reason, never empty


def test_macbook_air_m1_7b_q4_0_decode_close_to_published():
    # llama.cpp discussion #4167: M1 (8-core GPU), LLaMA-2 7B Q4_0, tg128 14.15 t/s
    r = run_cli("estimate", "-m", "llama-2-7b", "-q", "Q4_0", "-d", "macbook air 13 m1:16", "--json")
    d = json.loads(r.stdout)
    assert d["speed"]["decode_tps"] == pytest.approx(14.15, rel=0.15)
    assert d["basis"]["speed_inputs"]["calibrated"] is False


def test_bad_csvs(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("id,device\n1,Apple M1\n")
    with pytest.raises(UsageError, match="missing columns"):
        backtest(p)
    header = "id,category,device,device_variant,backend,model,params_B,quant,model_size_GiB,test,metric,value,unit\n"
    p.write_text(header + "1,x,Apple M1,8-core GPU,llama.cpp Metal,LLaMA-2 7B,6.74,Q4_0,3.56,tg128,gen,fast,t/s\n"
                          "2,x,Toaster 9000,,llama.cpp Metal,LLaMA-2 7B,6.74,Q4_0,3.56,tg128,gen,3.0,t/s\n")
    d = backtest(p)
    assert "not a number" in d["rows"][0]["unresolved"] and "not in the device database" in d["rows"][1]["unresolved"]
    r = run_cli("backtest", str(p))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no row could be evaluated" in r.stderr
    p.write_text(header + "1,x,Apple M1,8-core GPU,llama.cpp Metal,LLaMA-2 7B,6.74,Q4_0,3.56,tg128,gen,14.15,t/s\n")
    r = run_cli("backtest", str(p), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["rows"][0]["error"] == pytest.approx(-0.07, abs=0.08)
    assert run_cli("backtest", str(tmp_path / "missing.csv")).returncode == 1


def test_decode_follows_bytes_and_bandwidth():
    e = entries()["llama-2-7b"]
    m1 = DeviceSpeedSpec("metal", 68.25, 2.617)
    p = backend_params("metal")
    q8 = estimate_speed(spec_from_catalog(e, "Q8_0"), m1, p).decode_tps
    q4 = estimate_speed(spec_from_catalog(e, "Q4_K_M"), m1, p).decode_tps
    assert q4 > q8 * 1.4
    fast = estimate_speed(spec_from_catalog(e, "Q8_0"), DeviceSpeedSpec("metal", 136.5, 2.617), p).decode_tps
    assert 1.3 < fast / q8 < 2.0  # bandwidth dominates, compute and fixed costs do not scale


def test_moe_reads_only_active_experts():
    s = spec_from_catalog(entries()["qwen3-30b-a3b"], "Q4_K_M")
    nbytes, _, n = active_weights(s)
    assert n / s.parameter_count == pytest.approx(3.3 / 30.5, rel=0.15)  # Qwen: 3.3B of 30.5B active
    assert nbytes < 0.15 * s.weights_bytes


def test_weight_classes():
    assert [weight_class(t) for t in ("F16", "Q8_0", "Q4_0", "Q4_K", "IQ4_XS", "MLX_4BIT")] == ["f16", "q8", "q4", "kq", "kq", "q4"]


def test_estimate_speed_needs_a_profile_or_bandwidth(fitcheck_home):
    r = run_cli("estimate", "-m", "1.8b", "--memory-gb", "8", "--json")  # memory still answers
    assert r.returncode == 0 and json.loads(r.stdout)["speed"] is None
    assert "no saved profile: speed needs `fitcheck probe`" in r.stderr
    r = run_cli("estimate", "-m", "1.8b", "--memory-gb", "8", "--bandwidth-gbps", "50", "--tflops", "1", "--json")
    d = json.loads(r.stdout)
    assert d["speed"]["decode_tps"] > 0 and d["device"]["bw_gbps"] == 50
    r = run_cli("estimate", "-m", "1.8b", "--memory-gb", "8", "--bandwidth-gbps", "-5")
    assert r.returncode == 1 and "--bandwidth-gbps must be between" in r.stderr


def test_device_can_be_a_saved_profile_file(tmp_path):
    prof = {"schema": "fitcheck-profile", "version": 1,
            "memory": {"available_bytes": 8 << 30, "limit_bytes": 16 << 30},
            "bandwidth": {"status": "ok", "read_gbps": 40.0, "method": "C kernels"},
            "compute": {"fp32_gflops": 500.0}, "disk": {"status": "ok", "read_gbps": 2.0}}
    p = tmp_path / "other-machine.json"
    p.write_text(json.dumps(prof))
    r = run_cli("estimate", "-m", "1.8b", "-d", str(p), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["fit"]["usable_bytes"] == 8 << 30
    assert d["device"]["bw_gbps"] == 40.0 and d["speed"]["ttft_s"] > d["speed"]["load_s"] > 0
    p.write_text("{broken")
    r = run_cli("estimate", "-m", "1.8b", "-d", str(p))
    assert r.returncode == 1 and "corrupt" in r.stderr


def test_cpu_kernel_model_is_the_slower_of_streaming_and_computing():
    from fitcheck.estimator.speed import CpuKernelParams, CpuKernels

    k = CpuKernels(2, {"q4_0": 40e9, "q8_0": 40e9, "f16": 40e9, "q4_k": 40e9, "q6_k": 40e9},
                   {c: 300e9 for c in ("q4_0", "q8_0", "f16", "q4_k", "q6_k")})
    kp = CpuKernelParams(1.0, 1.0, 1.0)
    e = entries()["llama-2-7b"]
    fast_mem = DeviceSpeedSpec("cpu", 1000.0, None, kernels=k)
    slow_mem = DeviceSpeedSpec("cpu", 5.0, None, kernels=k)
    q4 = spec_from_catalog(e, "Q4_0")
    a, b = estimate_speed(q4, fast_mem, kp), estimate_speed(q4, slow_mem, kp)
    assert a.decode_breakdown_s["compute"] > a.decode_breakdown_s["bandwidth"]  # compute-bound with fast memory
    assert b.decode_breakdown_s["bandwidth"] > b.decode_breakdown_s["compute"]  # memory-bound with slow memory
    # (the one cached cell a token attends to at an empty context streams beside the weights' products: 1e-5)
    assert a.decode_tps == pytest.approx(1 / a.decode_breakdown_s["compute"], rel=1e-4)
    assert b.decode_tps == pytest.approx(1 / b.decode_breakdown_s["bandwidth"], rel=1e-4)
    f16 = spec_from_catalog(e, "F16")
    assert estimate_speed(f16, slow_mem, kp).decode_tps < b.decode_tps / 3  # 3.4x the bytes


def test_speed_answers_carry_an_interval(tmp_path):
    prof = {"schema": "fitcheck-profile", "version": 1, "memory": {"available_bytes": 8 << 30, "limit_bytes": 16 << 30},
            "bandwidth": {"status": "ok", "read_gbps": 40.0, "stats": {"read_gbps": {"spread": 0.2}}},
            "compute": {"fp32_gflops": 500.0}}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(prof))
    d = json.loads(run_cli("estimate", "-m", "1.8b", "-d", str(p), "--json").stdout)
    lo, hi = d["speed"]["decode_tps_range"]
    assert lo < d["speed"]["decode_tps"] < hi and d["device"]["speed_uncertainty"]["decode"] > 0.2
    out = run_cli("estimate", "-m", "1.8b", "-d", str(p)).stdout
    assert f"({lo:.1f}–{hi:.1f})" in out
    noisy = {**prof, "bandwidth": {**prof["bandwidth"], "stats": {"read_gbps": {"spread": 0.6}}}}
    p.write_text(json.dumps(noisy))
    wide = json.loads(run_cli("estimate", "-m", "1.8b", "-d", str(p), "--json").stdout)["speed"]["decode_tps_range"]
    assert wide[1] / wide[0] > hi / lo  # a noisier probe gives a wider interval


def test_a_calibration_from_other_hardware_is_kept_but_marked_stale():
    from fitcheck.device.profile import carry_calibration

    old = {"cpu": {"model": "CPU A"}, "runtime": {"llama_cpp_python": "0.3.36"}, "calibration": {"params": {}, "created": "x"}}
    same = {"cpu": {"model": "CPU A"}, "runtime": {"llama_cpp_python": "0.3.36"}}
    assert carry_calibration(same, old) is None and same["calibration"] == old["calibration"]
    other = {"cpu": {"model": "CPU B"}, "runtime": {"llama_cpp_python": "0.3.36"}}
    assert "CPU CPU A -> CPU B" in carry_calibration(other, old) and "CPU B" in other["calibration"]["stale"]


def test_a_prefill_pass_reads_every_expert_a_token_routes_to():
    """One token reads its routed experts (4 of 128 in gpt-oss-120b); a 512-token ubatch routes to nearly all of them,
    so prefill on a 273 GB/s device streams ~63 GB per pass and cannot pass ~2300 t/s on bandwidth alone."""
    from fitcheck.estimator.speed import pass_bytes

    spec = spec_from_catalog(entries()["gpt-oss-120b"], "MXFP4")
    assert pass_bytes(spec, 1) == pytest.approx(active_weights(spec)[0], rel=1e-6)
    assert pass_bytes(spec, 512) > 0.95 * spec.weights_bytes > 10 * active_weights(spec)[0]
    dense = spec_from_catalog(entries()["llama-3.1-8b"], "Q4_K_M")
    assert pass_bytes(dense, 512) == active_weights(dense)[0]
    dev = DeviceSpeedSpec("cuda", 273.0, 29.7)
    est = estimate_speed(spec, dev, backend_params("cuda"), n_prompt=512)
    assert est.prefill_tps < 512 / (pass_bytes(spec, 512) / 273e9)


def test_an_moe_prompt_runs_its_experts_below_dense_efficiency():
    """With 8 of 128 experts routed, a 512-token ubatch gives each expert ~32 tokens: its products cost
    (1 + h/32) / (1 + h/512) of a dense product's per element-token; a dense model at ubatch 512 is unchanged, and
    a smaller ubatch makes every product of a GPU's prompt dearer (fewer columns fill fewer tiles)."""
    from fitcheck.estimator.speed import (EXPERT_HALF_TOKENS, REF_COLUMNS, active_weights, class_rates, cols_h,
                                          narrow_products, output_tensor, prompt_products, work_of)
    from fitcheck.estimator.terms import prefill_seconds

    moe = spec_from_catalog(entries()["qwen3-30b-a3b"], "Q4_K_M")
    dense = spec_from_catalog(entries()["llama-3.1-8b"], "Q4_K_M")
    elems, out = active_weights(moe)[1], output_tensor(moe)
    narrow = narrow_products(moe, elems, 512, 512, out)
    exp = sum(n for t, n in elems.items() if t in narrow)
    assert sum(narrow.values()) <= exp * 512 * (1 / 32 - 1 / REF_COLUMNS) * 1.0001 and sum(narrow.values()) > 0
    assert narrow_products(dense, active_weights(dense)[1], 512, 512, output_tensor(dense)) == {}
    small = narrow_products(dense, active_weights(dense)[1], 512, 64, output_tensor(dense))
    assert all(v > 0 for v in small.values()) and small
    h = EXPERT_HALF_TOKENS
    assert cols_h(h) * (1 / 32 - 1 / 512) == pytest.approx((1 + h / 32) / (1 + h / 512) - 1)
    h100 = DeviceSpeedSpec("cuda", 3350, 66.9)

    def products_s(narrow):
        w = work_of(elems, {}, n_prompt=512, pp=prompt_products(elems, 512, out)[0], narrow=narrow)
        return float(prefill_seconds(w, class_rates(backend_params("cuda"), h100, w), 0.0)[0])

    # the experts are most of an MoE's products: at CUDA's fitted half-efficiency columns (~26) theirs cost ~1.7x
    h_cuda = backend_params("cuda").cols_half
    assert products_s(narrow) > 1.3 * products_s(None) and (1 + h_cuda / 32) / (1 + h_cuda / 512) > 1.3
