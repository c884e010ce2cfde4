"""The published llama-bench rows the backend classes are fitted on (device_db/published_runs_dev.csv): sourced,
never from a held-out source, the ones left out of the fit saying why, and the terms they fit (products over few
columns, GPU generations) behaving as the kernels they follow."""

from __future__ import annotations

import csv
import re
from importlib.resources import files

import pytest

from fitcheck.backtest import backtest, metric_of, samples_by_class

PATH = str(files("device_db").joinpath("published_runs_dev.csv"))
# the sources ../shared/heldout_sources.md names: fitcheck is judged on them, so no row may come from one
HELD_OUT = (r"discussions/(4167|15396|16578|4508)\b", r"dgx-spark\.md", r"mac-m2-ultra",
            r"llama\.cpp/issues/(34|39|3069|4716|6148|5619|11474|13164)\b",
            r"llama\.cpp/pull/(3776|4766|4812|6829|15077|16276|18626|19378|20590|28494)\b", r"XiongjieDai",
            r"llm-tracker", r"jetson-ai-lab", r"llm-perf-bench", r"T-MAC", r"mnn-llm", r"realizar", r"pocketpal",
            r"cactus-compute", r"executorch", r"apple-silicon-llm-bench", r"LLMFarm", r"fullmoon", r"flutter_gemma",
            r"LiteRT-LM", r"jegly/Box", r"ai-hub-apps", r"Russet", r"PocketLLM", r"ik_llama", r"LLMKube",
            r"exo-explore", r"distributed-llama", r"ai-benchmarks/issues/21\b", r"beowulf-ai-cluster",
            r"JordanFableFur", r"nerdpudding", r"qwen38-mtp", r"shimmy", r"1mieqcb", r"hardware-corner", r"ai-maestro",
            r"AIfred", r"holohub", r"mlc-llm/(issues|pull)/(15|600|1359|1495|1777|1881|2028|2703|1388)\b")


@pytest.fixture(scope="module")
def rows():
    with open(PATH, newline="") as f:
        return list(csv.DictReader(f))


def test_every_row_is_a_sourced_speed_and_none_comes_from_a_held_out_source(rows):
    assert len(rows) >= 600
    for r in rows:
        assert r["source"].strip() and r["verification"].strip(), r["id"]
        assert float(r["value"]) > 0 and metric_of(r["test"]) is not None, r["id"]
        assert not any(re.search(h, r["source"], re.I) for h in HELD_OUT), (r["id"], r["source"])
        assert r["fit"] == "" or r["fit"].startswith("no: "), r["id"]  # left out of the fit only with a reason


def test_rows_left_out_of_the_fit_are_backtested_but_not_fitted(rows):
    left_out = [r for r in rows if r["fit"]]
    assert left_out
    fitted = {row["id"] for s in samples_by_class(left_out, ("cuda", "rocm", "vulkan", "metal")).values()
              for _, _, row in s}
    assert not fitted
    scored = backtest(PATH)["rows"]
    assert {r["id"] for r in scored} == {r["id"] for r in rows}
    answered = [r for r in scored if "error" in r]
    assert len(answered) >= 0.85 * len(rows)
    assert all(r["unresolved"] for r in scored if "error" not in r)  # every row not answered says why


def test_a_product_over_few_columns_costs_more_per_token_on_a_gpu():
    """A small ubatch leaves a GPU's matrix tiles part-empty (the ubatch sweeps of the kernel PRs): the prompt
    runs slower at -ub 16 than at 512 on a fitted GPU class; a CPU's dense products take no such cost."""
    from fitcheck.device.device_speed import backend_params
    from fitcheck.estimator.speed import (DeviceSpeedSpec, active_weights, estimate_speed, narrow_products,
                                          output_tensor)
    from fitcheck.model.catalog import entries, spec_from_catalog

    spec = spec_from_catalog(entries()["llama-3.1-8b"], "Q4_0")
    gpu = DeviceSpeedSpec("cuda", 936.0, 35.6, gpu_arch="nvidia-ampere")
    at = {ub: estimate_speed(spec, gpu, backend_params("cuda"), n_prompt=2048, n_ubatch=ub).prefill_tps
          for ub in (16, 128, 512)}
    assert at[16] < at[128] < at[512]
    assert narrow_products(spec, active_weights(spec)[1], 2048, 64, output_tensor(spec), dense=False) == {}


def test_nvidia_generations_pick_their_fitted_prefill_factor():
    from fitcheck.device.backends import gpu_arch
    from fitcheck.device.device_speed import params_for

    names = ("Tesla P40", "Tesla V100", "GeForce RTX 2080 Ti", "GeForce RTX 3090", "RTX A6000", "GeForce RTX 4090",
             "RTX 6000 Ada", "H100 PCIe", "GeForce RTX 5090", "RTX PRO 4000 Blackwell", "Instinct MI300X")
    assert [gpu_arch(n) for n in names] == [
        "nvidia-pascal", "nvidia-volta", "nvidia-turing", "nvidia-ampere", "nvidia-ampere", "nvidia-ada",
        "nvidia-ada", "nvidia-hopper", "nvidia-blackwell", "nvidia-blackwell", "cdna"]
    p = params_for("cuda")[0]
    # int8 tensor-core MMA from Turing on: every later generation's prompts beat Pascal's dp4a path per FP32 TFLOP
    assert all(p.pp_arch[g] > 1.3 * p.pp_arch["nvidia-pascal"] for g in ("nvidia-turing", "nvidia-ampere",
                                                                          "nvidia-ada", "nvidia-blackwell"))
