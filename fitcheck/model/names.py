"""Model names as people write them, read into the parts that choose a catalog shape. Pure: no I/O.

"Llama 3 8B", "mixtral:8x7b", "phi3:medium", "Qwen/Qwen2.5-Coder-7B-Instruct", "zephyr-7b-beta",
"DeepSeek-R1-Distill-Llama-8B", "gemma-2-9b-it-Q6_K_L.gguf": a family (with its version), a size (total and, for
a mixture of experts, active or "8x7b"), the variant words (instruct, coder, distill ...) and a quant. A fine-tune
takes its base's shapes when its name states the base ("Hermes-3-Llama-3.1-8B") or is a well-known fine-tune of
one (FINETUNES); a name that matches a family but no catalog size, or only a size, is answered for the catalog's
model of that size and says so (the reading carries `approx`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# fine-tunes whose name does not state their base: (base family words, the model card that names it)
FINETUNES = {
    "zephyr": ("mistral", "HuggingFaceH4/zephyr-7b-beta card: fine-tuned from mistralai/Mistral-7B-v0.1"),
    "openhermes": ("mistral", "teknium/OpenHermes-2.5-Mistral-7B card: Mistral-7B fine-tune"),
    "openchat": ("mistral", "openchat/openchat-3.5-0106 card: based on Mistral-7B-v0.1"),
    "neuralchat": ("mistral", "Intel/neural-chat-7b-v3-1 card: fine-tuned from mistralai/Mistral-7B-v0.1"),
    "starling": ("mistral", "berkeley-nest/Starling-LM-7B-alpha card: from Openchat 3.5 (Mistral-7B)"),
    "wizardlm2": ("mistral", "WizardLM-2 7B release notes: based on Mistral-7B-v0.1"),
    "vicuna": ("llama 2", "lmsys/vicuna-13b-v1.5 card: fine-tuned from Llama 2"),
    "codellama": ("llama 2", "codellama/CodeLlama-7b-hf card: Llama 2 architecture (vocab 32016, 16k context)"),
    "orca2": ("llama 2", "microsoft/Orca-2-13b card: a fine-tuned Llama 2"),
    "nouscapybara": ("yi", "NousResearch/Nous-Capybara-34B card: Yi-34B fine-tune"),
    "tulu": ("llama 2", "allenai/tulu-2-7b card: a fine-tuned Llama 2"),
    "dolphin": ("mistral", "cognitivecomputations/dolphin-2.x-mistral cards (the base is in the full name)"),
}
# words a family goes by -> the family as the catalog's ids spell it
FAMILY_WORDS = {
    "llama": "llama", "meta": "", "codellama": "llama", "mistral": "mistral", "mixtral": "mixtral",
    "ministral": "ministral", "qwen": "qwen", "qwq": "qwen", "gemma": "gemma", "phi": "phi", "deepseek": "deepseek",
    "smollm": "smollm", "tinyllama": "tinyllama", "granite": "granite", "lfm": "lfm", "gpt": "gpt", "olmoe": "olmoe",
    "olmo": "olmo", "minicpm": "minicpm", "glm": "glm", "chatglm": "glm", "yi": "yi", "falcon": "falcon",
    "internlm": "internlm", "baichuan": "baichuan", "stablelm": "stablelm", "command": "command",
    "magistral": "mistral",  # Magistral Small is Mistral Small 3.x's shape (its model card)
    "kimi": "kimi", "starcoder": "starcoder", "exaone": "exaone", "orca": "orca", "aya": "aya", "codestral": "codestral",
}
# named sizes (Ollama's and the families' own): phi3:medium is Phi-3-medium (14B), not the mini
SIZE_WORDS = {"phi": {"mini": 3.8, "small": 7.0, "medium": 14.0},  # Phi-3 model cards
              "mistral": {"nemo": 12.2, "small": 24.0, "large": 123.0},  # Mistral-Nemo 12B, Small 24B, Large 2 123B
              "granite": {"micro": 3.4, "tiny": 7.0}}  # Granite-4.0 micro (dense) and tiny (hybrid MoE)
VARIANTS = ("instruct", "chat", "coder", "code", "math", "distill", "vision", "vl", "qat", "abliterated", "uncensored",
            "it", "base", "thinking", "reasoning", "preview", "hf", "gguf", "mlx", "awq", "gptq", "exl2", "beta", "alpha")
_SPLIT_PART = re.compile(r"(?:-\d{5}-of-\d{5}|\.part\d+of\d+)$", re.IGNORECASE)
_SIZE = re.compile(r"^(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])$")  # 8b, 0.5b, 135m, 8x7b
_ACTIVE = re.compile(r"^a(\d+(?:\.\d+)?)b$")  # a3b
_QUANT = re.compile(r"^(?:ud-)?(i?q\d(?:_[0-9a-z]+)*|bf16|f16|fp16|f32|mxfp4|int[48]|fp8)$", re.IGNORECASE)


@dataclass(frozen=True)
class NameParts:
    family: str  # as the catalog spells it ("llama", "qwen", "mistral"), "" when none is named
    version: str  # "3", "2.5", "" when none
    size_b: float | None  # total parameters, billions ("8x7b": 56 less the shared part is not known: 8 x 7)
    active_b: float | None
    experts: int  # "8x7b": 8
    variants: tuple[str, ...]
    quant: str | None
    base_from: str = ""  # how the base was found when a fine-tune names it or is known
    unread_numbers: bool = False  # a word with a digit that is none of the above ("3n", "e2b"): not a plain name


def quant_of_suffix(q: str) -> tuple[str, str | None]:
    """A quant as uploaders name it, as a format fitcheck models, and what was changed: bartowski's "_L" (Q8_0
    embeddings and output) and unsloth's dynamic "UD-..._XL" keep their base K-quant's weights."""
    u = q.strip().upper().replace("-", "_")
    if u.startswith("UD_"):
        u = u[3:]
    m = re.fullmatch(r"(I?Q\d(?:_K)?(?:_[SML0-9]+)?)_(L|XL)", u)
    if m and m.group(1) not in ("Q3_K",):
        base = m.group(1)
        base = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M", "Q8_K": "Q8_0"}.get(base, base)
        return base, f"{q} read as {base} (its embeddings and output kept at higher precision: slightly larger)"
    return {"FP16": "F16"}.get(u, u), None


def _tokens(text: str) -> list[str]:
    """Words; a dot separates them too unless it stands between digits ("7B.Q4_K_M", but "Qwen2.5", "v0.1")."""
    return [t for t in re.split(r"[-_ :/]+|(?<!\d)\.|\.(?!\d)", text.lower()) if t]


def parse(text: str) -> NameParts:
    """The parts of a model name; nothing is looked up here."""
    name = text.strip()
    name = re.sub(r"^(?:hf\.co/|huggingface\.co/|ollama\.com/|library/)", "", name, flags=re.IGNORECASE)
    name = _SPLIT_PART.sub("", name)
    name = re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    name = _SPLIT_PART.sub("", name)
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    name = re.sub(r"^([A-Za-z]+)_(?=[A-Z])", "", name)  # bartowski's "Qwen_Qwen3-..."
    words = _tokens(name)
    quant = None
    for i in range(len(words) - 1, -1, -1):  # the last quant-looking word ("...-Q4_K_M", "ud-q4_k_xl")
        tail = "_".join(words[i:])
        if _QUANT.match(tail) and i > 0:
            quant, words = tail.upper(), words[:i]
            if words and words[-1] == "ud":
                words = words[:-1]
            break
    # split glued family+version words: "llama3.1" -> llama 3.1, "qwen2.5" -> qwen 2.5, "phi3" -> phi 3
    flat: list[str] = []
    for w in words:
        m = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", w)
        if m and m.group(1) in FAMILY_WORDS and not _SIZE.match(w):
            flat += [m.group(1), m.group(2)]
        else:
            flat.append(w)
    family = version = base_from = ""
    size = active = None
    experts = 0
    variants: list[str] = []
    used: set[int] = set()
    for i, w in enumerate(flat):
        if w in FAMILY_WORDS and FAMILY_WORDS[w] and not family:
            family = FAMILY_WORDS[w]
            nxt = flat[i + 1] if i + 1 < len(flat) else ""
            if re.fullmatch(r"\d+(?:\.\d+)?", nxt) and not _SIZE.match(nxt):
                version = nxt
                used.add(i + 1)
        elif (m := _SIZE.match(w)) and size is None:
            used.add(i)
            n = float(m.group(2)) / (1000 if m.group(3) == "m" else 1)
            experts = int(m.group(1) or 0)
            size = n * experts if experts else n
        elif (m := _ACTIVE.match(w)) and active is None:
            used.add(i)
            active = float(m.group(1))
        elif w in VARIANTS:
            variants.append(w)
    if size is None and family in SIZE_WORDS:
        size = next((v for w, v in SIZE_WORDS[family].items() if w in flat), None)
    known = next((k for k in FINETUNES if k in "".join(flat[:2])), None)
    unread = any(re.search(r"\d", w) for i, w in enumerate(flat) if i not in used and not re.fullmatch(r"v?\d{1,4}", w))
    return NameParts(family, version, size, active, experts, tuple(variants), quant, known or base_from, unread)


def embedded_bases(text: str) -> list[str]:
    """The other family names inside a fine-tune's name, last first ("DeepSeek-R1-Distill-Llama-8B": "Llama-8B";
    "Hermes-3-Llama-3.1-8B": "Llama-3.1-8B"): each a name to try as the base."""
    words = _tokens(re.sub(r"\.gguf$", "", text.strip().rsplit("/", 1)[-1], flags=re.IGNORECASE))
    out = []
    for i, w in enumerate(words):
        head = re.match(r"[a-z]+", w)
        if i > 0 and head and FAMILY_WORDS.get(head.group(0)):
            out.append("-".join(words[i:]))
    return out[::-1]
