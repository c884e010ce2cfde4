"""`fitcheck estimate`: one model on one device -> memory, verdict, speed."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from fitcheck.errors import UsageError
from fitcheck.estimator.evaluate import DEFAULT_PROMPT, Target, evaluate
from fitcheck.estimator.fit import TIGHT_MARGIN
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.model.model_spec import ModelSpec

DEFAULT_QUANT = "Q4_K_M"
# architectures released in a llama.cpp format of their own: their GGUFs keep it (gpt-oss: MXFP4 experts, Q8_0 rest)
NATIVE_QUANT = {"gpt-oss": "MXFP4_MOE"}


def default_quant(arch: str) -> str:
    return NATIVE_QUANT.get(arch, DEFAULT_QUANT)


def _looks_like_path(model: str) -> bool:
    from fitcheck.model.remote import is_remote

    return is_remote(model) or model.endswith(".gguf") or os.sep in model or Path(model).exists()


def _catalog_file_name(model: str) -> bool:
    """A bare GGUF file name that is not here ("Qwen3-1.7B-Q4_K_M.gguf"): read as a catalog model and quant."""
    from fitcheck.model.remote import is_remote

    return model.lower().endswith(".gguf") and os.sep not in model and not is_remote(model) and not Path(model).exists()


def _repo_id(model: str) -> bool:
    """A Hugging Face repo id ("Qwen/Qwen3-1.7B"), with Ollama's "hf.co/" and ":QUANT" tag if given, that is not a
    path here."""
    return bool(re.fullmatch(r"(?:hf\.co/|huggingface\.co/)?[\w.-]+/[\w.-]+(?::[\w.-]+)?", model.strip())) \
        and not model.lower().endswith(".gguf") and not Path(model).exists()


def resolve_model(model: str, quant: str | None) -> tuple[ModelSpec, dict[str, Any]]:
    """A ModelSpec from a GGUF path or URL, or from the catalog by id, size alias, Hugging Face repo id, Ollama tag
    or GGUF file name (its quant too), and how it was resolved."""
    from fitcheck.errors import UnknownModelError
    from fitcheck.model.catalog import resolve, spec_from_catalog, split_quant
    from fitcheck.model.quants import get_format

    entry = None
    if not _looks_like_path(model) or _catalog_file_name(model) or _repo_id(model):
        try:
            entry, alias = resolve(model)
        except UnknownModelError:
            if not _catalog_file_name(model):
                raise  # a file name nothing matches is reported as a missing file below
    if entry is None:
        from fitcheck.model.inspection import load_spec

        spec = load_spec(model)
        if quant and quant.upper().replace("-", "_") != (spec.file_type or "").upper():
            raise UsageError(f"{Path(model).name} is a {spec.file_type} file; --quant applies to catalog models, not files")
        return spec, {"source": "gguf", "file": Path(model).name, "file_type": spec.file_type}
    from fitcheck.model.names import quant_of_suffix

    named, quant_note = split_quant(model)[1], None
    if named:
        named, quant_note = quant_of_suffix(named)  # "Q6_K_L", "UD-Q4_K_XL": the K-quant under the uploader's mix
    if quant and named and get_format(quant).name != get_format(named).name:
        raise UsageError(f"{model} names {named}, but --quant says {quant}")
    q = get_format(quant or named or default_quant(entry.arch)).name
    spec = spec_from_catalog(entry, q)
    basis = {"source": "catalog", "id": entry.id, "name": entry.name, "quant": q,
             "config_source": entry.source, "config_verification": entry.verification,
             "weights_recipe": (f"llama-quantize's default {q} recipe from the catalog's shapes; published files often "
                                "keep the embeddings or output at higher precision (a GGUF or its remote header gives "
                                "the exact size)") if get_format(q).runtime == "llama.cpp" else f"{q} group format"}
    if alias:
        from fitcheck.model.catalog import ALIASES

        approx = re.match(r"^(.*) \(((?:answering for a generic|a fine-tune of|another version of) .*)\)$", alias, re.DOTALL)
        if approx:  # said on the answer, not only in --json
            alias, basis["approximate"] = approx.group(1), approx.group(2)
        basis["alias"] = (f"{alias} -> {entry.id} (representative {entry.name})" if alias in ALIASES
                          else f"{alias} read as {entry.id} ({entry.name})")
    if quant_note:
        basis["quant_read"] = quant_note
    if not (quant or named):
        released = " (its released format)" if entry.arch in NATIVE_QUANT else ""
        basis["quant_default"] = f"no --quant given: {q}{released}"
    return spec, basis


def estimate(model: str, target: Target, quant: str | None = None, settings: RuntimeSettings | None = None,
             n_prompt: int | None = None, cpu_target: Target | None = None, preset=None,
             ctx_from_model: bool = False, depth: int | None = None, parallel: int | None = None) -> dict[str, Any]:
    """`preset` (fitcheck.runtimes.RuntimePreset) is recorded with its source; `ctx_from_model` sets the
    context to the model's trained length, as llama.cpp's tools do by default."""
    s = settings or RuntimeSettings()
    spec, model_basis = resolve_model(model, quant)
    if ctx_from_model:
        s = replace(s, n_ctx=spec.n_ctx_train)
    if n_prompt is None:  # the default prompt follows a context shorter than it
        n_prompt = min(DEFAULT_PROMPT, s.n_ctx)
    if not 1 <= n_prompt <= s.n_ctx:
        raise UsageError(f"--prompt must be between 1 and the context length {s.n_ctx}, got {n_prompt}")
    if depth is not None and not 0 <= depth <= s.n_ctx - n_prompt:
        raise UsageError(f"--depth must be between 0 and the context length less the prompt ({s.n_ctx} - {n_prompt} = "
                         f"{s.n_ctx - n_prompt}), got {depth}")
    if parallel is not None and not 1 <= parallel <= 256:
        raise UsageError(f"--parallel must be between 1 and 256, got {parallel}")
    if preset is not None:
        model_basis["runtime"] = {"id": preset.id, "defaults": preset.defaults(), "source": preset.source,
                                  "verification": preset.verification, "notes": preset.notes}
    d = estimate_spec(spec, model_basis, target, s, n_prompt, cpu_target, depth)
    if parallel and d["speed"] and target.speed is not None and target.params is not None:
        from fitcheck.estimator.speed import AttnMode, estimate_parallel
        from fitcheck.serve import users_ladder

        at = depth if depth is not None else n_prompt
        runs = [estimate_parallel(spec, target.speed, target.params, n, at, s.n_ubatch, AttnMode.of(s))
                for n in users_ladder(parallel)]
        d["speed"]["parallel"] = {"depth": at, "rows": [
            {"n_seq": e.n_seq, "aggregate_tps": e.aggregate_tps, "per_seq_tps": e.per_seq_tps} for e in runs]}
    return d


MMAP_APP = "an app that maps the weights and runs them on the CPU without repacking (LLMFarm-style; llama.cpp use_mmap, use_extra_bufts=false)"


def paging_ways_out(spec: ModelSpec, s: RuntimeSettings, target: Target, cpu_target: Target | None,
                    n_prompt: int) -> list[dict[str, Any]]:
    """When the setup asked about is killed: what an mmap app on the CPU gets (it pages, or is killed too),
    with the iOS increased-memory entitlement too where there is one (LLMFarm-style apps have it)."""
    base = cpu_target or target
    if base.paging is None or (base.speed and base.speed.backend != "cpu"):
        return []
    alt = base.without_repacking()
    s = replace(s, use_mmap=True, n_gpu_layers=0)
    ways = [(None, MMAP_APP)]
    if base.alternatives.entitlement_usable_bytes:
        ways.append((base.alternatives.entitlement_usable_bytes, MMAP_APP + ", with the increased-memory-limit entitlement"))
    out = []
    for usable, how in ways:
        ev = evaluate(spec, s, alt, n_prompt=n_prompt, usable_bytes=usable)
        if ev.fit.verdict in ("pages", "fits", "tight"):
            sp = ev.speed
            out.append({"how": how, "verdict": ev.fit.verdict, "decode_tps": sp.decode_tps if sp else None,
                        "prefill_tps": sp.prefill_tps if sp else None,
                        "paging": ev.paging.to_dict() if ev.paging else None,
                        "decode_tps_range": ev.row()["decode_tps_range"]})
    return out


def estimate_spec(spec: ModelSpec, model_basis: dict[str, Any], target: Target, s: RuntimeSettings,
                  n_prompt: int = DEFAULT_PROMPT, cpu_target: Target | None = None,
                  depth: int | None = None) -> dict[str, Any]:
    """What `fitcheck estimate --json` prints for a model already read: speed at `depth` cells already in the cache
    (decode there, the prompt on top of them), and the curve over the context when it is long or a depth is given."""
    from fitcheck.estimator.evaluate import LONG_CONTEXT, depth_curve

    ev = evaluate(spec, s, target, n_prompt=n_prompt, depth=depth or 0)
    warnings = list(ev.memory.notes) + list(target.warnings)
    speed = ev.speed.to_dict() if ev.speed and ev.runs else None
    if speed:
        row = ev.row()
        speed.update(decode_tps_range=row["decode_tps_range"], prefill_tps_range=row["prefill_tps_range"], depth=depth or 0)
        if ev.in_memory and (depth is not None or s.n_ctx >= LONG_CONTEXT):
            speed["at_depth"] = depth_curve(spec, s, target, n_prompt)
    return {
        "model": {"name": spec.name, "architecture": spec.architecture, "parameter_count": spec.parameter_count,
                  "quant": spec.file_type, "bits_per_weight": round(spec.bits_per_weight, 4), "n_layer": spec.n_layer,
                  "n_ctx_train": spec.n_ctx_train},
        "device": target.to_dict(),
        "memory": ev.memory.to_dict(),
        "fit": ev.fit.to_dict(),
        "paging": ev.paging.to_dict() if ev.paging else None,
        "ways_out": paging_ways_out(spec, s, target, cpu_target, n_prompt) if ev.fit.verdict == "killed" else [],
        "speed": speed,
        "warnings": warnings,
        "basis": {
            **model_basis,
            "memory": target.memory_rule,
            "settings": asdict(s),
            "speed_inputs": {"note": target.speed_note, "calibrated": target.calibrated, "n_prompt": n_prompt}
            if speed else None,
            "verdict_uses": "reserved total (weights + full-context KV cache + worst-case compute buffer + output + runtime overhead)",
            "resident_note": f"resident_bytes is the RSS expected after a {n_prompt}-token prompt and generation (compute buffer only partly touched)",
            "tight_margin": f"'tight' when the reserved total is within the last {TIGHT_MARGIN:.0%} of usable memory",
            "kv_cache": "llama.cpp layout: context padded to 256 cells; sliding-window layers sized window + ubatch (padded) unless swa_full",
        },
    }
