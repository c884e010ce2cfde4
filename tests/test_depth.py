"""Speed at a filled context (issue 28): attention over the cached cells in decode and under a prompt, sliding
windows that stop growing, recurrent layers that hold no cache, and the curve an answer shows."""

from __future__ import annotations

import json
from dataclasses import replace
import random

import pytest

from fitcheck.device.device_speed import backend_params
from fitcheck.estimator.speed import (AttnMode, DeviceSpeedSpec, attention_macs, attention_work, cells_computed,
                                      estimate_speed, keys_attended, kv_bytes_read)
from fitcheck.model.catalog import entries, spec_from_catalog

from .conftest import run_cli


def test_keys_attended_is_the_sum_it_stands_for():
    rng = random.Random(1)
    for _ in range(300):
        d, n = rng.randrange(0, 3000), rng.randrange(0, 700)
        w = rng.choice([None, 1, 64, 512, 1024, 4096])
        brute = sum(min(w, d + i + 1) if w else d + i + 1 for i in range(n))
        assert keys_attended(d, n, w) == pytest.approx(brute), (d, n, w)


def _spec(name):
    return spec_from_catalog(entries()[name], "Q4_0")


FA, NO_FA, NO_FA_SMALL_SWA = AttnMode(flash_attn=True), AttnMode(flash_attn=False), AttnMode(False, swa_full=False)


def test_cells_computed_follow_llama_cpps_two_attention_paths():
    rng = random.Random(2)
    for _ in range(200):
        d, n, ub = rng.randrange(0, 5000), rng.randrange(1, 1500), rng.choice([1, 64, 512])
        w = rng.choice([None, 512, 1024])
        # flash attention: the causal span only, at most the window
        assert cells_computed(d, n, w, ub, FA) == keys_attended(d, n, w)
        # without: every query of a ubatch against every cell of the view (all cells used so far, ...)
        chunks = [min(ub, n - i) for i in range(0, n, ub)]
        ends = [d + sum(chunks[:k + 1]) for k in range(len(chunks))]
        assert cells_computed(d, n, w, ub, NO_FA) == pytest.approx(sum(b * e for b, e in zip(chunks, ends)))
        # ... a sliding-window layer's SWA cache at most window + ubatch cells when it is not full-size
        assert cells_computed(d, n, w, ub, NO_FA_SMALL_SWA) == pytest.approx(
            sum(b * (min(e, w + ub) if w else e) for b, e in zip(chunks, ends)))
        assert cells_computed(d, n, w, ub, FA) <= cells_computed(d, n, w, ub, NO_FA_SMALL_SWA) <= cells_computed(
            d, n, w, ub, NO_FA)


def test_attention_follows_the_layers_that_hold_a_cache():
    dense, swa, hybrid = _spec("llama-3.2-1b"), _spec("gemma-3-270m"), _spec("lfm2-350m")
    e = entries()["llama-3.2-1b"]
    # a dense model at depth 0, flash attention on: every layer, every head, K and V widths, half the square of the
    # prompt; off: the whole square (the mask is applied after the product)
    assert attention_macs(dense, 512, mode=FA) == pytest.approx(e.n_layer * e.n_head * 2 * e.head_dim * 512 * 513 / 2)
    assert attention_macs(dense, 512, mode=NO_FA) == pytest.approx(e.n_layer * e.n_head * 2 * e.head_dim * 512 * 512)
    macs, scores = attention_work(dense, 512, mode=NO_FA)
    assert macs == pytest.approx(scores * 2 * e.head_dim)  # a score per query head and cell
    # decode's cached reads: linear in depth for full attention; a sliding window's layers stop at the window
    # when flash attention skips the masked cells (or the SWA cache is window-sized), not when a full-size cache
    # is computed and masked
    assert kv_bytes_read(dense, 16384) == pytest.approx(2 * kv_bytes_read(dense, 8192), rel=1e-3)
    full = [il for il in range(swa.n_layer) if not swa.is_swa(il)]
    assert 0 < len(full) < swa.n_layer
    growth = 2 * 8192 * sum(swa.n_embd_k_gqa(il) + swa.n_embd_v_gqa(il) for il in full)
    for mode in (FA, NO_FA_SMALL_SWA):
        assert kv_bytes_read(swa, 16384, mode=mode) - kv_bytes_read(swa, 8192, mode=mode) == growth
    assert kv_bytes_read(swa, 16384, mode=NO_FA) - kv_bytes_read(swa, 8192, mode=NO_FA) > 3 * growth
    # recurrent layers hold no cache: the hybrid's attention is a fraction of a dense model's of its width
    attn_layers = sum(1 for il in range(hybrid.n_layer) if hybrid.has_kv(il))
    assert 0 < attn_layers < hybrid.n_layer
    assert attention_macs(hybrid, 1, depth=8192) == pytest.approx(
        sum(hybrid.n_head[il] * (hybrid.head_dim_k + hybrid.head_dim_v) * 8193
            for il in range(hybrid.n_layer) if hybrid.has_kv(il)))


def test_decode_and_prefill_slow_with_depth_and_less_for_windows_and_recurrent_layers():
    dev = DeviceSpeedSpec("metal", 400.0, 30.0, name="M-class GPU")
    p = backend_params("metal")
    drop = {}
    for name in ("llama-3.2-1b", "gemma-3-270m", "lfm2-350m"):
        spec = _spec(name)
        at = [estimate_speed(spec, dev, p, n_prompt=512, depth=d, prompt_depth=d, mode=FA) for d in (0, 8192, 16384, 32000)]
        assert all(a.decode_tps > b.decode_tps for a, b in zip(at, at[1:])), name
        assert all(a.prefill_tps > b.prefill_tps for a, b in zip(at, at[1:])), name
        drop[name] = at[0].decode_tps / at[-1].decode_tps
    assert drop["llama-3.2-1b"] > drop["gemma-3-270m"] and drop["llama-3.2-1b"] > drop["lfm2-350m"]
    # depth 0 is the empty-context figure every other answer quotes
    spec = _spec("llama-3.2-1b")
    assert estimate_speed(spec, dev, p, depth=0, prompt_depth=0) == estimate_speed(spec, dev, p)


def test_a_long_context_answer_shows_the_curve():
    r = run_cli("estimate", "-m", "llama-3.2-1b", "-d", "RTX 4090", "--ctx", "32768", "--json")
    assert r.returncode == 0, r.stderr
    sp = json.loads(r.stdout)["speed"]
    c = sp["at_depth"]
    assert [p["depth"] for p in c["points"]] == [0, 8192, 16384, 32768 - 512]
    assert c["points"][0]["decode_tps"] == pytest.approx(sp["decode_tps"])
    assert c["full_prompt_tokens"] == 32768 and c["full_prompt_ttft_s"] > sp["ttft_s"]
    text = " ".join(run_cli("estimate", "-m", "llama-3.2-1b", "-d", "RTX 4090", "--ctx", "32768").stdout.split())
    assert "at depth (tokens already in the cache)" in text and "a 32k-token prompt: first token after" in text
    # a short context: one number, as before; --depth asks for the speed there
    short = json.loads(run_cli("estimate", "-m", "llama-3.2-1b", "-d", "RTX 4090", "--json").stdout)["speed"]
    assert "at_depth" not in short
    deep = json.loads(run_cli("estimate", "-m", "llama-3.2-1b", "-d", "RTX 4090", "--depth", "3000", "--json").stdout)
    assert deep["speed"]["depth"] == 3000 and deep["speed"]["decode_tps"] < short["decode_tps"]


@pytest.mark.parametrize("depth", ["-1", "4000", "999999999"])
def test_a_depth_past_the_context_is_one_line(depth):
    r = run_cli("estimate", "-m", "1.8b", "-d", "RTX 4090", "--depth", depth)
    assert r.returncode in (1, 2) and r.stderr.count("\n") == 1 and "--depth" in r.stderr, r.stderr


@pytest.mark.parametrize("backend, bw, tflops", [("cuda", 1008.0, 82.6), ("metal", 400.0, 30.0), ("cpu", 60.0, 1.0)])
def test_batched_decode_is_decode_for_one_and_shares_the_weights_for_more(backend, bw, tflops):
    from fitcheck.estimator.speed import estimate_parallel

    dev, p = DeviceSpeedSpec(backend, bw, tflops, name=backend), backend_params(backend)
    spec = _spec("llama-3.2-1b")
    for depth in (0, 4096):
        one = estimate_parallel(spec, dev, p, 1, depth)
        assert one.aggregate_tps == pytest.approx(estimate_speed(spec, dev, p, depth=depth).decode_tps, rel=1e-9)
        rows = [estimate_parallel(spec, dev, p, n, depth) for n in (1, 2, 4, 8, 16, 64)]
        for a, b in zip(rows, rows[1:]):
            assert b.aggregate_tps >= a.aggregate_tps * (1 - 1e-9) and b.per_seq_tps <= a.per_seq_tps * (1 + 1e-9)
            assert b.aggregate_tps <= b.n_seq * one.aggregate_tps * (1 + 1e-9)


def test_serve_capacity_answers_how_many_users():
    r = run_cli("serve-capacity", "-m", "llama-3.1-8b", "-d", "RTX 4090", "--ctx", "8192", "--min-tps", "20", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    rows = d["rows"]
    assert [x["users"] for x in rows][:3] == [1, 2, 4]
    assert all(b["total_bytes"] > a["total_bytes"] for a, b in zip(rows, rows[1:]))  # a context per user
    ok = [x["users"] for x in rows if x["verdict"] == "fits" and x["per_user_tps"] >= 20]
    assert d["max_users"] == max(ok) and all(x["meets"] == (x["users"] in ok) for x in rows)
    assert rows[-1]["verdict"] != "fits" or rows[-1]["users"] == 64  # it stops where memory runs out
    text = run_cli("serve-capacity", "-m", "llama-3.1-8b", "-d", "RTX 4090", "--ctx", "8192", "--min-tps", "20").stdout
    assert f"{d['max_users']} users at once get at least 20 t/s each" in text


@pytest.mark.parametrize("args, why", [(("--min-tps", "0"), "--min-tps"), (("--max-users", "9999"), "--max-users"),
                                       (("-d", "no such phone 9"), "unknown device")])
def test_serve_capacity_bad_input_is_one_line(args, why):
    r = run_cli("serve-capacity", "-m", "1.8b", "-d", "RTX 4090", *args)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and why in r.stderr, r.stderr


def test_a_cpu_batches_columns_the_way_its_kernels_take_them():
    """llama.cpp's CPU backend: a repacked type's gemm takes columns in groups of 4 (fewer go one at a time),
    tinyBLAS's from 2, K-quants it does not repack never; where compute sets the pace that is what batching gains."""
    from fitcheck.estimator.speed import CpuKernelParams, CpuKernels, estimate_parallel

    rates = {c: 1e10 for c in ("f16", "q8_0", "q4_0", "q4_k", "q6_k")}
    kernels = CpuKernels(threads=2, tg_elems_per_s=rates, pp_elems_per_s={c: 8e10 for c in rates})
    kp = CpuKernelParams(bw_eff=0.9, tg_scale=1.0, pp_scale=1.0)
    dev = DeviceSpeedSpec("cpu", 500.0, 1.0, name="compute-bound CPU", kernels=kernels)  # bandwidth to spare

    def gain(quant, n, dev=dev):
        spec = spec_from_catalog(entries()["llama-3.2-1b"], quant)
        return estimate_parallel(spec, dev, kp, n).aggregate_tps / estimate_parallel(spec, dev, kp, 1).aggregate_tps

    assert gain("Q4_0", 2) == pytest.approx(1.0, rel=0.05) and gain("Q4_0", 3) == pytest.approx(1.0, rel=0.05)
    assert gain("Q4_0", 4) > 2.5 and gain("Q4_0", 8) > gain("Q4_0", 5)
    unrepacked = replace(dev, kernels=replace(kernels, repack=False))
    assert gain("Q4_0", 2, unrepacked) > 1.5  # tinyBLAS
    assert gain("Q6_K", 8) == pytest.approx(1.0, rel=0.05)  # one column at a time
