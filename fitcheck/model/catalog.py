"""Built-in model catalog: exact shapes of reference models, so sizes can be estimated without a file.

Shapes live in fitcheck/data/catalog.csv with their sources (copied from
shared/data/model_configs.csv). A catalog entry plus a quantization becomes a
ModelSpec whose tensor table is what llama.cpp's converter and quantizer
would write, so weight bytes match a real file.
"""

from __future__ import annotations

import csv
import difflib
import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fitcheck.errors import FitcheckError, UnknownModelError
from fitcheck.model.arch_layouts import expert_shapes, ffn_shapes, layout, qkv_shapes
from fitcheck.model.gguf_reader import GGUFModel, TensorInfo
from fitcheck.model.model_spec import ModelSpec, TensorSpec, spec_from_gguf, swa_layout
from fitcheck.model.quants import ModelFacts, get_format, group_format_bytes, gguf_tensor_types, type_bytes

# size aliases -> representative model. The seed's sizes keep the seed's models (its 7B is Qwen2-7B, its 1.8B
# Qwen1.5-1.8B); "4b" is Qwen3-4B, the dense 4B of 2025. Sizes that came with 2025-26 name that year's model people
# run at the size (the Qwen3.5 hybrids, LFM2.5, Gemma-4's E-models, gpt-oss); older ones keep their 2024 model.
ALIASES = {
    "135m": "smollm2-135m", "270m": "gemma-3-270m", "360m": "smollm2-360m", "0.5b": "qwen2.5-0.5b",
    "0.6b": "qwen3-0.6b", "0.8b": "qwen3.5-0.8b", "1b": "llama-3.2-1b", "1.1b": "tinyllama-1.1b",
    "1.2b": "lfm2.5-1.2b", "1.5b": "qwen2.5-1.5b", "1.7b": "smollm2-1.7b", "1.8b": "qwen1.5-1.8b",
    "2b": "qwen3.5-2b", "3b": "llama-3.2-3b", "3.8b": "phi-3-mini", "4b": "qwen3-4b", "7b": "qwen2-7b",
    "8b": "llama-3.1-8b", "9b": "qwen3.5-9b", "12b": "gemma-3-12b", "13b": "llama-2-13b", "14b": "qwen3-14b",
    "20b": "gpt-oss-20b", "24b": "mistral-small-3.2-24b", "31b": "gemma-4-31b", "120b": "gpt-oss-120b",
    "e2b": "gemma-4-e2b", "e4b": "gemma-4-e4b", "30b-a3b": "qwen3-30b-a3b", "26b-a4b": "gemma-4-26b-a4b",
}


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    n_ctx_train: int
    tied: bool
    swa_window: int
    swa_pattern: int
    n_expert: int
    n_expert_used: int
    expert_ff: int
    params_b_published: float
    hf_repo: str
    verification: str
    source: str
    notes: str
    arch_params: str = ""  # architecture-specific shape facts (arch_layouts.parse_params)


_INT_FIELDS = {"n_layer", "n_embd", "n_ff", "n_head", "n_head_kv", "head_dim", "n_vocab", "n_ctx_train",
               "swa_window", "swa_pattern", "n_expert", "n_expert_used", "expert_ff"}


@lru_cache(maxsize=1)
def entries() -> dict[str, CatalogEntry]:
    text = files("fitcheck").joinpath("data/catalog.csv").read_text()
    out = {}
    for row in csv.DictReader(text.splitlines()):
        kw = {k: (int(v) if k in _INT_FIELDS else v) for k, v in row.items()}
        kw["tied"] = row["tied"] == "1"
        kw["params_b_published"] = float(row["params_b_published"])
        out[row["id"]] = CatalogEntry(**kw)
    return out


# Ollama library names that differ from the catalog's beyond punctuation (ollama.com/library tags)
OLLAMA_NAMES = {"phi3": "phi-3-mini", "phi3mini": "phi-3-mini", "phi35": "phi-3.5-mini", "phi4mini": "phi-4-mini",
                "deepseekr115b": "deepseek-r1-distill-qwen-1.5b", "deepseekr17b": "deepseek-r1-distill-qwen-7b",
                "qwen18b": "qwen1.5-1.8b", "qwen3moe": "qwen3-30b-a3b", "qwen330b": "qwen3-30b-a3b",
                "llama27b": "llama-2-7b", "llama213b": "llama-2-13b", "mistral7b": "mistral-7b",
                "granite4micro": "granite-4.0-micro", "granite4microh": "granite-4.0-h-micro",
                "granite4tinyh": "granite-4.0-h-tiny", "granite41bh": "granite-4.0-h-1b", "olmoe": "olmoe-1b-7b",
                "ministral3": "ministral-3-8b", "deepseekr114b": "deepseek-r1-distill-qwen-14b",
                "deepseekr132b": "deepseek-r1-distill-qwen-32b", "deepseekr170b": "deepseek-r1-distill-llama-70b",
                "llama370b": "llama-3-70b", "llama270b": "llama-2-70b", "mistralnemo": "mistral-nemo-12b",
                "gemma327b": "gemma-3-27b", "granite338b": "granite-3.3-8b", "granite332b": "granite-3.3-2b"}
# words a repository or file name adds to the model's own name
_SUFFIXES = ("gguf", "instruct", "it", "chat", "base", "hf", "mlx", "4bit", "8bit", "thinking", "reasoning", "preview")
_QUANT_TAIL = re.compile(r"(?:^|[-_.:])((?:ud[-_])?(?:i?q\d(?:_[0-9a-z]+)*)|bf16|f16|f32|mxfp4|int[48]|fp8)$", re.IGNORECASE)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def split_quant(name: str) -> tuple[str, str | None]:
    """('Qwen3-1.7B', 'Q4_K_M') from 'Qwen3-1.7B-Q4_K_M.gguf' or 'qwen3:1.7b-q4_K_M'; the quant is None when absent."""
    base = re.sub(r"\.gguf$", "", name.strip(), flags=re.IGNORECASE)
    m = _QUANT_TAIL.search(base)
    if m and m.start(1) > 0:
        return base[: m.start()].rstrip("-_.:"), m.group(1).upper()
    return base, None


def _name_index() -> dict[str, str]:
    idx = {}
    for e in entries().values():
        for n in (e.id, re.sub(r"\s*\(.*\)", "", e.name), e.hf_repo.split("/")[-1]):
            idx.setdefault(_norm(n), e.id)
    return {**idx, **OLLAMA_NAMES}


def _by_name(text: str) -> str | None:
    """A catalog id for a Hugging Face repo id, an Ollama tag or a GGUF file name, as people type them."""
    name = text.strip().split("/")[-1]  # "unsloth/Qwen3-1.7B-GGUF" -> "Qwen3-1.7B-GGUF"
    name = name.split("_", 1)[1] if re.match(r"^[A-Za-z]+_[A-Z]", name) else name  # bartowski's "Qwen_Qwen3-..."
    name, _ = split_quant(name)
    words = [w for w in re.split(r"[-_.: ]", name.lower()) if w]
    if words[:1] == ["meta"]:  # "Meta-Llama-3.1-8B-Instruct"
        words = words[1:]
    # what a release adds to the model's name: "-Instruct", "-Thinking-2507", "-GGUF", wherever they sit
    words = [w for w in words if w not in _SUFFIXES and not re.fullmatch(r"2[0-9]{3}", w)]
    # "...-v0.3" names a version the catalog may hold ("mistral-7b-v0.1"); else the model without it
    m = next((i for i, w in enumerate(words) if re.fullmatch(r"v[0-9]+", w)), None)
    unversioned = words[:m] if m else words
    idx = _name_index()
    for key in ("".join(words), "".join(unversioned), name.replace(":", "")):
        if _norm(key) in idx:
            return idx[_norm(key)]
    # "phi4-mini:3.8b": the tag's size is redundant, unless it names another size ("phi3:medium" is not the mini)
    found = idx.get(_norm(name.split(":")[0])) if ":" in name else None
    if found:
        from fitcheck.model.names import parse

        size = parse(name).size_b
        if size is None or abs(entries()[found].params_b_published / size - 1) <= SIZE_MATCH:
            return found
    return None


# llama.cpp's own architecture words in llama-bench's "model type" column ("llama 8B", "qwen3moe 30B.A3B")
_BENCH_TYPE = re.compile(r"^([a-z][a-z0-9_.-]*?)\s+(\d+(?:\.\d+)?)b(?:\.a(\d+(?:\.\d+)?)b)?\b")


def _by_bench_type(model: str) -> str | None:
    """'<arch> <size>B' as llama-bench prints a model: the catalog entry of that llama.cpp architecture whose
    parameter count is nearest the size (within 15 %); among equals the one named after the architecture
    ("llama 7B" is Llama-2-7B, not Mistral-7B)."""
    m = _BENCH_TYPE.match(model.strip().lower())
    if not m:
        return None
    arch, size = m.group(1), float(m.group(2))
    if size <= 0:  # "llama 0B" names no model
        return None
    cands = [e for e in entries().values() if e.arch == arch and e.params_b_published
             and abs(e.params_b_published / size - 1) <= 0.15]
    if not cands:
        return None
    return min(cands, key=lambda e: (not e.id.startswith(arch.split("moe")[0]), abs(e.params_b_published - size))).id


@lru_cache(maxsize=1)
def _entry_parts() -> dict[str, Any]:
    """Each entry's family, version and size as fitcheck.model.names reads its id (its published size)."""
    from fitcheck.model.names import parse

    out = {}
    for e in entries().values():
        p = parse(e.id)
        out[e.id] = (p.family, p.version, e.params_b_published or p.size_b or 0.0, p.active_b, e.n_expert, p.size_b)
    return out


SIZE_MATCH = 0.15  # a stated size names a catalog model within this of its published parameter count


def _nearest(ids: list[str], size: float | None, active: float | None = None, moe: bool | None = None) -> str | None:
    """The entry of `ids` nearest `size` within SIZE_MATCH (and `active`); `moe`: only that kind (None: either)."""
    parts = _entry_parts()
    # its published count, or the size its own name rounds it to ("granite-3.1-2b" is 2.5B)
    fits = [i for i in ids if size and min(abs(parts[i][2] / size - 1), abs((parts[i][5] or 0) / size - 1)) <= SIZE_MATCH
            and (active is None or parts[i][3] is None or abs(parts[i][3] / active - 1) <= SIZE_MATCH)
            and (moe is None or bool(parts[i][4]) == moe)]
    return min(fits, key=lambda i: round(abs(parts[i][2] - size), 1)) if fits else None  # stable: first of equals


# an Ollama tag without a size (its ":latest") and plain family names: the size Ollama's library pulls by default
# (ollama.com/library/<name>, the "latest" tag, as of 2025-26)
FAMILY_DEFAULTS = {"llama2": "llama-2-7b", "llama3": "llama-3-8b", "llama31": "llama-3.1-8b", "llama32": "llama-3.2-3b",
                   "mistral": "mistral-7b", "mixtral": "mixtral-8x7b", "qwen": "qwen1.5-1.8b", "qwen2": "qwen2-7b",
                   "qwen25": "qwen2.5-7b", "qwen3": "qwen3-8b", "qwen25coder": "qwen2.5-coder-7b", "gemma": "gemma-7b",
                   "gemma2": "gemma-2-9b", "gemma3": "gemma-3-4b", "gemma3n": "gemma-3n-e4b", "phi3": "phi-3-mini",
                   "phi35": "phi-3.5-mini", "phi4": "phi-4", "tinyllama": "tinyllama-1.1b", "smollm2": "smollm2-1.7b",
                   "smollm3": "smollm3-3b", "codellama": "codellama-7b", "deepseekr1": "deepseek-r1-distill-llama-8b",
                   "granite33": "granite-3.3-8b", "gptoss": "gpt-oss-20b", "mistralnemo": "mistral-nemo-12b",
                   "yi15": "yi-1.5-9b", "falcon3": "falcon3-7b", "internlm25": "internlm2.5-7b", "glm4": "glm-4-9b",
                   "olmoe": "olmoe-1b-7b", "minicpm": "minicpm-2b", "lfm2": "lfm2-1.2b",
                   # one size only, or named without one (Hugging Face repositories, Ollama's library)
                   "deepseekv3": "deepseek-v3", "deepseekv30324": "deepseek-v3", "deepseekv31": "deepseek-v3",
                   "deepseekr10528": "deepseek-v3", "deepseekv2": "deepseek-v2", "deepseekv2lite": "deepseek-v2-lite",
                   "deepseekcoderv2": "deepseek-coder-v2-lite", "deepseekcoderv2lite": "deepseek-coder-v2-lite",
                   "kimik2": "kimi-k2", "glm45": "glm-4.5", "glm45air": "glm-4.5-air", "glm46": "glm-4.6",
                   "glm47flash": "glm-4.7-flash", "llama4": "llama-4-scout", "llama4scout": "llama-4-scout",
                   "llama4maverick": "llama-4-maverick", "orcamini": "orca-mini-3b", "qwen3next": "qwen3-next-80b-a3b",
                   "falcon": "falcon-7b", "starcoder2": "starcoder2-3b", "commandr": "command-r-08-2024",
                   "commandrplus": "command-r-plus-104b", "mistrallarge": "mistral-large-2407", "codestral": "codestral-22b",
                   "qwq": "qwq-32b", "exaone35": "exaone-3.5-7.8b", "olmo2": "olmo2-7b", "granite31dense": "granite-3.1-8b",
                   "ayaexpanse": "aya-expanse-8b", "nemotronmini": "nemotron-mini-4b", "moondream": "moondream2",
                   "moondream2": "moondream2", "stablelm2": "stablelm-2-1.6b", "stablelmzephyr": "stablelm-zephyr-3b"}
# names whose Ollama library default is a smaller relative of the model the name itself means
ORIGINAL_MODELS = {"deepseekr1": "deepseek-v3", "deepseekcoderv2": "deepseek-coder-v2-236b", "kimik2": "kimi-k2"}
# words a catalog id carries that only a name carrying them too may match (a Coder model is not its base's chat one)
EXCLUSIVE_VARIANTS = ("coder", "distill")
GENERIC_LIMIT = 0.25  # a generic-size answer only from a catalog model within this of the size asked


def _by_default(model: str) -> str | None:
    """A family named without a size, as Ollama's default tag or a plain name ("mistral", "llama3.1:latest")."""
    from fitcheck.model.names import parse

    name = re.sub(r":latest$", "", model.strip().lower()).rsplit("/", 1)[-1]
    if parse(name).size_b is not None:
        return None
    key = re.sub(r"[^a-z0-9]", "", re.sub(r"-(instruct|chat|it|base)$", "", name))
    # an Ollama library name ("deepseek-r1", "deepseek-coder-v2:latest": lower case, no spaces, no organisation)
    # pulls Ollama's default tag; the model's own name ("DeepSeek R1", "deepseek-ai/DeepSeek-R1") is the model itself
    ollama = ":" in model or ("/" not in model and " " not in model.strip() and model.strip() == model.strip().lower())
    return (None if ollama else ORIGINAL_MODELS.get(key)) or FAMILY_DEFAULTS.get(key)


def _by_parts(model: str) -> tuple[str, str] | None:
    """(catalog id, how it was read) from a name's parts (fitcheck.model.names): a family base named inside a
    fine-tune's name first ("...-Llama-3.1-8B"), then the name's own family, version and size, then a well-known
    fine-tune's base; a version the catalog lacks falls back to the family's nearest size, and says so."""
    from fitcheck.model.names import FINETUNES, embedded_bases, parse

    parts = _entry_parts()

    def match(p, how: str) -> tuple[str, str] | None:
        fam = [i for i, x in parts.items() if x[0] == p.family
               and all((w in i) == (w in p.variants) for w in EXCLUSIVE_VARIANTS)] if p.family else []
        same = [i for i in fam if p.version and (parts[i][1] == p.version or parts[i][1].startswith(p.version + "."))]
        same.sort(key=lambda i: parts[i][1] != p.version)  # "Llama 3 8B": Llama-3-8B before Llama-3.1-8B
        if p.size_b is None:  # "dolphin-mixtral": the family's default size, when nothing else in the name is a number
            hit = None if p.unread_numbers else FAMILY_DEFAULTS.get(p.family + p.version.replace(".", ""))
            return (hit, how) if hit else None
        moe = bool(p.experts or p.active_b)
        # the same kind first (dense or mixture of experts); in its own version the other kind too ("qwen3:30b")
        hit = _nearest(same, p.size_b, p.active_b, moe) or _nearest(same, p.size_b, p.active_b)
        if hit:
            return hit, how
        hit = _nearest(fam, p.size_b, p.active_b, moe) or (None if p.version else _nearest(fam, p.size_b, p.active_b))
        if hit and p.version:  # "granite3.1-dense:2b": the family's model of that size, another version, said
            return hit, f"{how + '; ' if how else ''}another version of the family at that size: its shapes"
        return (hit, how) if hit else None

    own = parse(model)
    for base in embedded_bases(model):
        p = parse(base)
        if p.size_b is None and own.size_b is not None:  # "nous-hermes:13b-llama2": the size stated elsewhere
            p = replace(p, size_b=own.size_b, active_b=own.active_b, experts=own.experts, unread_numbers=False)
        got = match(p, f"a fine-tune of {base}: its base's shapes")
        if not got and p.size_b is None and FAMILY_DEFAULTS.get(p.family):  # "Dolphin-Mixtral:v2.7": the base's
            got = FAMILY_DEFAULTS[p.family], f"a fine-tune of {p.family.title()}: its default size's shapes"  # size
        if got:
            return got
    got = match(own, "")
    if got:
        return got
    if own.base_from:
        family, card = FINETUNES[own.base_from]
        got = match(parse(f"{family} {own.size_b or 7:g}b"), f"a fine-tune of {family.title()} ({card})")
        if got:
            return got
    return None


def _generic(model: str) -> tuple[str, str] | None:
    """A name whose family the catalog lacks (or lacks at that size) but that states a size: the catalog's model
    nearest that size (a dense one unless the name says mixture of experts), said so."""
    from fitcheck.model.names import parse

    p = parse(model)
    if not p.size_b or p.size_b <= 0:
        return None
    moe = bool(p.experts or p.active_b)
    parts = _entry_parts()
    pool = [i for i, x in parts.items() if x[2] and bool(x[4]) == moe]
    best = min(pool, key=lambda i: abs(math.log(parts[i][2] / p.size_b)), default=None)
    if best is None or abs(parts[best][2] / p.size_b - 1) > GENERIC_LIMIT:  # nothing near: no answer beats a wrong one
        return None
    kind = "mixture-of-experts" if moe else "dense"
    return best, (f"answering for a generic {p.size_b:g}B {kind} model: {entries()[best].name}'s shape "
                  f"({parts[best][2]:g}B), the catalog's nearest; give a GGUF file or URL for the exact one")


def resolve(model: str) -> tuple[CatalogEntry, str | None]:
    """Catalog entry for an id, size alias, Hugging Face repo id, Ollama tag, GGUF file name or a name as people
    write it ("Llama 3 8B", "zephyr-7b-beta"); second value says how the name was read (None for an id)."""
    from fitcheck.text import clean_name, shown

    model = clean_name(model, "model name")
    key = model.lower()
    if key in ALIASES:
        return entries()[ALIASES[key]], key
    if key in entries():
        return entries()[key], None
    parent, _, leaf = model.strip().rpartition("/")
    if parent and re.match(r"(ggml-)?model\b", leaf.lower()):  # "phi-2/ggml-model-q4_0.gguf": the folder names it
        entry, how = resolve(parent.rsplit("/", 1)[-1] + leaf[leaf.lower().index("model") + 5:])
        return entry, f"{model.strip()} (read as its folder's name{': ' + how if how else ''})"
    found = _by_name(model) or _by_bench_type(model) or _by_default(model)
    if found:
        return entries()[found], model.strip()
    read = _by_parts(model) or _generic(model)
    if read:
        return entries()[read[0]], f"{model.strip()} ({read[1]})" if read[1] else model.strip()
    names = list(entries()) + list(ALIASES)
    near = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"; nearest: {', '.join(near)}" if near else f"; known: {', '.join(sorted(ALIASES))} or `fitcheck models`"
    raise UnknownModelError(f"unknown model {shown(model)}{hint}")


# a plain two-matrix MLP, no gate (llama.cpp src/models/falcon.cpp, starcoder2.cpp, starcoder.cpp, phi2.cpp,
# nemotron.cpp: build_ffn with ffn_gate null)
UNGATED_FFN = ("falcon", "starcoder2", "starcoder", "phi2", "nemotron", "gpt2")


def tensor_shapes(e: CatalogEntry) -> list[tuple[str, tuple[int, ...]]]:
    """(name, ggml shape) of every tensor llama.cpp's converter writes for this architecture."""
    lay = layout(e)
    if lay is not None:
        return lay.shapes
    d, hd, nh, nkv, ff = e.n_embd, e.head_dim, e.n_head, e.n_head_kv, e.n_ff
    q, kv = nh * hd, nkv * hd
    t: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (d, e.n_vocab)), ("output_norm.weight", (d,))]
    if not e.tied:
        t.append(("output.weight", (d, e.n_vocab)))
    for il in range(e.n_layer):
        b = f"blk.{il}."
        t.append((b + "attn_norm.weight", (d,)))
        if e.arch in ("phi3", "chatglm"):
            t.append((b + "attn_qkv.weight", (d, q + 2 * kv)))
            if e.arch == "chatglm":
                t.append((b + "attn_qkv.bias", (q + 2 * kv,)))
        else:
            t += qkv_shapes(b, d, q, kv)
            if e.arch == "qwen2":
                t += [(b + "attn_q.bias", (q,)), (b + "attn_k.bias", (kv,)), (b + "attn_v.bias", (kv,))]
        if e.arch in ("qwen3", "qwen3moe", "gemma3"):
            t += [(b + "attn_q_norm.weight", (hd,)), (b + "attn_k_norm.weight", (hd,))]
        t.append((b + "attn_output.weight", (q, d)))
        if e.arch in ("gemma2", "gemma3"):
            t.append((b + "post_attention_norm.weight", (d,)))
        t.append((b + "ffn_norm.weight", (d,)))
        if e.n_expert:
            t += expert_shapes(b, d, e.expert_ff, e.n_expert)
        elif e.arch in ("phi3", "chatglm"):
            t += [(b + "ffn_up.weight", (d, 2 * ff)), (b + "ffn_down.weight", (ff, d))]
        elif e.arch in UNGATED_FFN:
            t += [(b + "ffn_up.weight", (d, ff)), (b + "ffn_down.weight", (ff, d))]
        else:
            t += ffn_shapes(b, d, ff)
        if e.arch in ("gemma2", "gemma3"):
            t.append((b + "post_ffw_norm.weight", (d,)))
    return t


def _n(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _typed(e: CatalogEntry, fmt, shapes) -> tuple[TensorSpec, ...]:
    """Each tensor with the type a file of `fmt` gives it."""
    if fmt.runtime == "llama.cpp":
        facts = ModelFacts(e.n_layer, e.n_head // max(e.n_head_kv, 1), e.n_expert, e.arch)
        types = gguf_tensor_types(fmt.name, shapes, facts)
        return tuple(TensorSpec(n, types[n], s, _n(s), type_bytes(types[n], _n(s))) for n, s in shapes)
    # MLX / MLC quantize every 2-D weight (embeddings included); the rest stays fp16
    return tuple(
        TensorSpec(n, fmt.name, s, _n(s), group_format_bytes(fmt, _n(s))) if len(s) >= 2 and not n.endswith("_inp.weight")
        else TensorSpec(n, "F16", s, _n(s), 2 * _n(s))
        for n, s in shapes
    )


def spec_from_catalog(e: CatalogEntry, quant: str) -> ModelSpec:
    """A ModelSpec with the tensor table a file of `quant` would have."""
    fmt = get_format(quant)
    lay = layout(e)
    tensors = _typed(e, fmt, lay.shapes if lay else tensor_shapes(e))
    if lay is not None:  # read back as a file's header is read: one description of hybrid layouts
        header = GGUFModel(paths=(f"catalog:{e.id}",), version=3, file_size_bytes=0,
                           metadata={"general.architecture": e.arch, "general.name": e.name,
                                     f"{e.arch}.vocab_size": e.n_vocab, **lay.metadata},
                           tensors=tuple(TensorInfo(t.name, t.shape, t.ggml_type, 0, t.n_elements, t.n_bytes)
                                         for t in tensors))
        return replace(spec_from_gguf(header), source=f"catalog:{e.id}", file_type=fmt.name,
                       n_merges=e.n_vocab if _bpe(e) else 0)
    swa = swa_layout(e.n_layer, e.swa_pattern) if e.swa_window and e.swa_pattern else ()
    return ModelSpec(
        name=e.name, architecture=e.arch, source=f"catalog:{e.id}",
        n_layer=e.n_layer, n_embd=e.n_embd, n_ctx_train=e.n_ctx_train, n_vocab=e.n_vocab,
        n_head=(e.n_head,) * e.n_layer, n_head_kv=(e.n_head_kv,) * e.n_layer,
        head_dim_k=e.head_dim, head_dim_v=e.head_dim,
        n_ff=(e.n_ff if not e.n_expert else 0,) * e.n_layer,
        n_expert=e.n_expert, n_expert_used=e.n_expert_used,
        sliding_window=e.swa_window or None if swa else None, swa_layers=swa,
        tensors=tensors, file_type=fmt.name, size_label=None,
        n_merges=e.n_vocab if _bpe(e) else 0,
    )


def _bpe(e: CatalogEntry) -> bool:
    """GPT-2-style BPE tokenizers (Qwen, GLM, Llama-3, SmolLM2/3, gpt-oss, OLMoE, Granite, LFM2) carry ~one merge
    per token; Gemma's and Phi's SentencePiece none."""
    return e.arch in ("qwen2", "qwen2vl", "qwen3", "qwen3moe", "qwen35", "chatglm", "command-r", "starcoder2", "olmo2",
                      "exaone", "falcon", "phi2", "starcoder", "granitemoe", "stablelm", "smollm3", "gpt-oss", "olmoe", "granite",
                      "granitehybrid", "lfm2") or (e.arch == "llama" and e.n_vocab in (128256, 49152))


def search_models(query: str) -> dict:
    """`fitcheck models QUERY`: what the query reads as (the entry and how, or why not) and the entries whose id or
    name holds every word of it (or the parts it reads as); the resolved one first. UnknownModelError when none."""
    from fitcheck.model.names import parse

    try:
        e, how = resolve(query)
        how = how if how and how.strip().lower() != query.strip().lower() else ""  # (the name itself says nothing)
        resolved = {"id": e.id, "name": e.name, "params_b_published": e.params_b_published, "how": how}
    except FitcheckError as err:
        e, resolved = None, {"error": str(err)}
    words = [w for w in re.findall(r"[a-z0-9.]+", query.lower()) if w not in _SUFFIXES]
    p = parse(query)
    hits = [x for x in entries().values() if words and all(w in f"{x.id} {x.name.lower()}" for w in words)]
    if not hits and p.family:  # a family and version as the name reads: its sizes
        parts = _entry_parts()
        hits = [x for x in entries().values() if parts[x.id][0] == p.family and parts[x.id][1].startswith(p.version)]
    if e is not None:
        hits = [e] + [x for x in hits if x.id != e.id]
    if not hits:
        raise UnknownModelError(resolved["error"])
    return {"resolved": resolved, "models": hits}
