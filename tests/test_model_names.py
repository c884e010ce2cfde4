"""Models named as people type them: Hugging Face repo ids, Ollama tags, GGUF file names (with their quant)."""

from __future__ import annotations

import json

import pytest

from fitcheck.model.catalog import resolve, split_quant

from .conftest import run_cli


@pytest.mark.parametrize("name,model_id", [
    ("Qwen/Qwen3-1.7B", "qwen3-1.7b"), ("unsloth/Qwen3-1.7B-GGUF", "qwen3-1.7b"),
    ("bartowski/Qwen_Qwen3-1.7B-GGUF", "qwen3-1.7b"), ("microsoft/Phi-4-mini-instruct", "phi-4-mini"),
    ("qwen3:1.7b", "qwen3-1.7b"), ("gemma3:1b", "gemma-3-1b"), ("llama3.2:3b", "llama-3.2-3b"),
    ("phi4-mini:3.8b", "phi-4-mini"), ("phi3.5", "phi-3.5-mini"), ("deepseek-r1:1.5b", "deepseek-r1-distill-qwen-1.5b"),
    ("Llama-3.2-3B-Instruct-Q4_K_M.gguf", "llama-3.2-3b"), ("gemma-3-270m-it-Q4_K_M.gguf", "gemma-3-270m"),
    ("QWEN3-1.7B", "qwen3-1.7b"), ("gpt-oss:20b", "gpt-oss-20b"), ("gemma3n:e2b", "gemma-3n-e2b"),
    ("unsloth/Qwen3.5-0.8B-GGUF", "qwen3.5-0.8b"), ("qwen3.5:2b", "qwen3.5-2b"), ("granite4:micro-h", "granite-4.0-h-micro"),
    ("LiquidAI/LFM2.5-1.2B-Instruct-GGUF", "lfm2.5-1.2b"), ("gemma-4-E2B-it-Q4_K_M.gguf", "gemma-4-e2b"),
    ("HuggingFaceTB/SmolLM3-3B", "smollm3-3b"), ("lfm2.5-1.2b-instruct", "lfm2.5-1.2b"),
    ("Qwen/Qwen3-4B-Instruct-2507", "qwen3-4b"), ("unsloth/Qwen3-4B-Thinking-2507-GGUF", "qwen3-4b"),
    ("mistralai/Mistral-Small-3.2-24B-Instruct-2506", "mistral-small-3.2-24b"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b"), ("Mistral-7B-Instruct-v0.1-Q4_0.gguf", "mistral-7b-v0.1"),
    ("TinyLlama-1.1B-Chat-v1.0", "tinyllama-1.1b"), ("Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
])
def test_names_as_typed(name, model_id):
    assert resolve(name)[0].id == model_id


def test_quant_in_a_name():
    assert split_quant("Qwen3-1.7B-Q4_K_M.gguf") == ("Qwen3-1.7B", "Q4_K_M")
    assert split_quant("qwen3:1.7b-q8_0") == ("qwen3:1.7b", "Q8_0")
    assert split_quant("Qwen/Qwen3-1.7B") == ("Qwen/Qwen3-1.7B", None)


def test_estimate_reads_model_and_quant_from_a_file_name_that_is_not_here():
    r = run_cli("estimate", "-m", "Qwen3-1.7B-Q8_0.gguf", "-d", "Galaxy S23", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["model"]["quant"] == "Q8_0" and d["basis"]["id"] == "qwen3-1.7b" and "read as" in d["basis"]["alias"]
    r = run_cli("estimate", "-m", "Qwen3-1.7B-Q8_0.gguf", "-q", "Q4_0", "-d", "Galaxy S23")
    assert r.returncode != 0 and "names Q8_0" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name, cid, how", [
    # plain names, versions the catalog holds under another point release
    ("Llama 3 8B", "llama-3-8b", None), ("llama3:70b", "llama-3-70b", None), ("mistral 7b", "mistral-7b", None), ("llama3.1:70b", "llama-3.1-70b", None),
    # a fine-tune whose name states its base, or a well-known one whose card does
    ("Hermes-3-Llama-3.1-8B", "llama-3.1-8b", "fine-tune of"), ("DeepSeek-R1-Distill-Llama-8B", "deepseek-r1-distill-llama-8b", None),
    ("OpenHermes-2.5-Mistral-7B", "mistral-7b", "fine-tune of"), ("zephyr-7b-beta", "mistral-7b", "fine-tune of"),
    ("vicuna-13b-v1.5", "llama-2-13b", "fine-tune of"), ("codellama:7b", "codellama-7b", None), ("mixtral:8x7b", "mixtral-8x7b", None),
    ("phi4:14b", "phi-4", None), ("gemma3:27b", "gemma-3-27b", None), ("deepseek-r1:14b", "deepseek-r1-distill-qwen-14b", None),
    ("Mistral-Nemo-Instruct-2407", "mistral-nemo-12b", None), ("granite3.3:8b", "granite-3.3-8b", None),
    ("Dolphin-2.8-Mistral-7B-v02", "mistral-7b", "fine-tune of"), ("Nous-Hermes-2-Yi-34B", "yi-1.5-34b", "fine-tune of"),
    ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2.5-coder-7b", None),
])
def test_names_people_write(name, cid, how):
    e, read = resolve(name)
    assert e.id.startswith(cid) and (how is None or how in read), read  # "mistral-7b": v0.1 or v0.3, one shape


def test_a_size_the_family_lacks_is_answered_for_that_size_and_says_so():
    e, read = resolve("internlm2:20b")  # no 20B InternLM in the catalog: the nearest dense model of 20B, said
    assert "generic 20B dense model" in read and abs(e.params_b_published / 20 - 1) < 0.15
    # Ollama's phi3:medium is Phi-3-medium (14B), never the 3.8B mini its family word alone would give
    e, read = resolve("phi3:medium")
    assert e.id == "phi-3-medium"
    r = run_cli("estimate", "-m", "internlm2:20b", "-d", "RTX 4090")
    assert r.returncode == 0 and "note:" in r.stdout and "generic 20B dense model" in " ".join(r.stdout.split())


def test_an_uploaders_quant_mix_is_read_as_its_k_quant():
    d = json.loads(run_cli("estimate", "-m", "gemma-2-9b-it-Q6_K_L.gguf", "-d", "RTX 4090", "--json").stdout)
    assert d["basis"]["id"] == "gemma-2-9b" and d["model"]["quant"] == "Q6_K" and "Q6_K_L read as Q6_K" in d["basis"]["quant_read"]
    d = json.loads(run_cli("estimate", "-m", "unsloth/Qwen3-4B-GGUF:UD-Q4_K_XL", "-d", "RTX 4090", "--json").stdout)
    assert d["basis"]["id"] == "qwen3-4b" and d["model"]["quant"] == "Q4_K_M"


@pytest.mark.parametrize("name", ["Llama 3 8Z", "someorg/nosuch-model", "a" * 400, "llama\x07 8b"])
def test_names_that_name_nothing_stay_one_line_errors(name):
    r = run_cli("estimate", "-m", name)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_unknown_names_stay_errors():
    r = run_cli("estimate", "-m", "nosuch-model-Q4_0.gguf")
    assert r.returncode != 0 and "no such file" in r.stderr
    r = run_cli("estimate", "-m", "someorg/nosuch-model")
    assert r.returncode != 0 and "unknown model" in r.stderr


@pytest.mark.parametrize("name, cid", [
    ("qwen3moe 30B.A3B", "qwen3-30b-a3b"), ("llama 7B", "llama-2-7b"), ("llama 8B", "llama-3.1-8b"),
    ("gpt-oss 20B", "gpt-oss-20b"), ("gemma3 4B", "gemma-3-4b"), ("llama 70B", "llama-3.1-70b"),
])
def test_llama_bench_model_types_resolve(name, cid):
    """llama-bench's "model type" column (llama.cpp's architecture word and size) names a catalog shape."""
    assert resolve(name)[0].id == cid


@pytest.mark.parametrize("ftype, fmt", [("Q4_K - Medium", "Q4_K_M"), ("Q3_K - Large", "Q3_K_L"), ("Q2_K - Medium", "Q2_K"),
                                        ("IQ4_XS - 4.25 bpw", "IQ4_XS"), ("MXFP4 MoE", "MXFP4_MOE")])
def test_llama_bench_file_types_resolve(ftype, fmt):
    from fitcheck.model.quants import get_format

    assert get_format(ftype).name == fmt


@pytest.mark.parametrize("said, entry_id", [
    ("deepseek-ai/DeepSeek-V3-0324", "deepseek-v3"), ("deepseek-ai/DeepSeek-R1-0528", "deepseek-v3"),
    ("unsloth/GLM-4.5-Air-GGUF", "glm-4.5-air"), ("llama4:scout", "llama-4-scout"), ("Llama 4 Scout 109B Q4", "llama-4-scout"),
    ("Qwen/Qwen3.5-397B-A17B", "qwen3.5-397b-a17b"), ("Dolphin-Mixtral:v2.7", "mixtral-8x7b"),
    ("phi-2/ggml-model-q4_0.gguf", "phi-2"), ("granite3.1-dense:2b", "granite-3.1-2b"), ("orca-mini", "orca-mini-3b"),
    # Ollama's library name pulls its default tag; the model's own name is the model itself
    ("deepseek-r1", "deepseek-r1-distill-llama-8b"), ("DeepSeek R1", "deepseek-v3"), ("deepseek-ai/DeepSeek-R1", "deepseek-v3"),
    ("deepseek-coder-v2:latest", "deepseek-coder-v2-lite"), ("deepseek-ai/DeepSeek-Coder-V2-Instruct", "deepseek-coder-v2-236b"),
])
def test_2025_models_and_folder_names(said, entry_id):
    assert resolve(said)[0].id == entry_id
