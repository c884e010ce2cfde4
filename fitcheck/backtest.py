"""Backtest the speed model on published measurements (CSV in the schema of published_benchmarks_dev.csv).

Each row's device (device + device_variant) is resolved through device_db and
its model through the catalog (name, quant, params); the row's metric is
predicted and compared. Rows that cannot be resolved are kept, with the reason.
"""

from __future__ import annotations

import csv
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fitcheck.errors import UsageError
from fitcheck.model.model_spec import ModelSpec
from fitcheck.device.device_speed import backend_params
from fitcheck.estimator.speed import DeviceSpeedSpec, estimate_speed

REQUIRED = ("id", "category", "device", "device_variant", "backend", "model", "params_B", "quant", "test", "value")

# published model names -> catalog ids with the same tensor shapes
MODEL_ALIASES = {
    "llama-2 7b": "llama-2-7b", "llama 7b": "llama-2-7b", "codellama 7b": "llama-2-7b",
    "llama-3 8b": "llama-3.1-8b", "qwen3-4b": "qwen3-4b", "qwen3-30b-a3b": "qwen3-30b-a3b",
    "qwen2.5 0.5b": "qwen2.5-0.5b", "qwen2.5 3b": "qwen2.5-3b", "qwen2.5 7b": "qwen2.5-7b",
    "qwen2.5-coder 7b": "qwen2.5-7b",
}
QUANT_ALIASES = {"fp16": "F16", "bf16": "F16", "q8": "MLX_8BIT", "q4": "MLX_4BIT", "mlx 4-bit": "MLX_4BIT",
                 "q4 (mlx 4-bit)": "MLX_4BIT"}


@dataclass(frozen=True)
class Resolved:
    spec: ModelSpec
    device: DeviceSpeedSpec
    backend: str
    metric: str  # prefill | decode
    n_prompt: int
    depth: int
    notes: str


def read_rows(path: str | Path) -> list[dict[str, str]]:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{p}: cannot read: {e}") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise UsageError(f"{p}: missing columns {', '.join(missing)} (schema of published_benchmarks_dev.csv)")
    return list(reader)


def metric_of(test: str) -> tuple[str, int, int] | None:
    """(prefill|decode, prompt tokens, decode depth) for a test name, or None if it is not a speed test."""
    t = test.lower()
    m = re.match(r"pp(\d+)", t)
    if m:
        return "prefill", int(m.group(1)), 0
    m = re.match(r"tg(\d+)", t)
    if m:
        return "decode", 512, int(m.group(1)) // 2  # mean depth over the generated tokens
    if t.startswith(("prompt",)):
        return "prefill", 512, 0
    if t.startswith(("eval", "decode", "generation")):
        m = re.search(r"~?(\d+) tok", t)
        return "decode", 512, (int(m.group(1)) // 2) if m else 64
    return None


def backend_of(text: str) -> str | None:
    t = text.lower()
    if "cuda" in t and "metal" in t:
        return None  # "CUDA/Metal": the device decides
    if "mlx" in t and "llama.cpp" not in t:
        return "mlx"
    if "metal" in t:
        return "metal"
    if "cuda" in t:
        return "cuda"
    if "vulkan" in t:
        return "vulkan"
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("+", " plus")).strip("-")


def _device(row: dict[str, str]):
    import device_db

    from fitcheck.device.names import search

    dev, variant = row["device"].strip(), row.get("device_variant", "")
    text = f"{dev} {variant}"
    cores = re.search(r"(\d+)[- ]core", text) or re.search(r"(\d+) GPU", text)
    apple = re.search(r"\b(M\d(?: Pro| Max| Ultra)?)\b", dev)
    base = re.sub(r"\s+\d+GB.*$|\s+\d+-core.*$|\s*\(.*$", "", dev).strip()
    ids = []
    if apple:
        ids.append("apple-" + _slug(apple.group(1)))
    ids.append(_slug(base))
    table = device_db.devices()
    for stem in ids:
        if cores and f"{stem}-{cores.group(1)}c" in table:
            return table[f"{stem}-{cores.group(1)}c"], None
        if stem in table:
            return table[stem], None
    first_variant_word = variant.split()[0] if variant.split() else ""
    for q in (f"{base} {first_variant_word}".strip(), dev, base):
        hits = search(q)
        if len(hits) > 1:
            # prefer the chip entry, then the one whose memory type the row names
            chips = [h for h in hits if h.kind in ("chip", "gpu")]
            named = [h for h in chips if h.mem_type and h.mem_type.split("-")[0].lower() in text.lower()]
            hits = named or chips or hits
        if len(hits) == 1:
            return hits[0], None
    return None, f"device {dev!r} ({variant or 'no variant'}) not in the device database (or ambiguous)"


def _model(row: dict[str, str]):
    from fitcheck.model.catalog import entries, spec_from_catalog
    from fitcheck.model.quants import get_format

    name = row["model"].lower()
    cid = next((v for k, v in MODEL_ALIASES.items() if name.startswith(k)), None)
    if cid is None:
        return None, f"model {row['model']!r} has no catalog shape"
    q = row["quant"].strip()
    q = QUANT_ALIASES.get(q.lower(), q)
    try:
        fmt = get_format(q)
    except UsageError:
        return None, f"quantization {row['quant']!r} is not modelled"
    return spec_from_catalog(entries()[cid], fmt.name), None


def resolve_row(row: dict[str, str]) -> tuple[Resolved | None, str | None]:
    metric = metric_of(row["test"])
    if metric is None:
        return None, f"test {row['test']!r} is not a prefill or decode speed"
    dev, why = _device(row)
    if dev is None:
        return None, why
    backend = backend_of(row["backend"])
    if backend is None and "llama.cpp" in row["backend"].lower() and dev.backend in ("metal", "cuda"):
        backend = dev.backend  # a plain llama.cpp row runs on the device's own GPU backend
    if backend is None:
        return None, f"backend {row['backend']!r} is not a modelled class"
    if not dev.bw_gbps:
        return None, f"{dev.id} has no bandwidth in the database"
    if metric[0] == "prefill" and not (dev.fp16_tflops or dev.fp32_tflops):
        return None, f"{dev.id} has no FLOPS in the database (needed for prefill)"
    spec, why = _model(row)
    if spec is None:
        return None, why
    # Apple GPUs run fp16 at the fp32 rate; for CUDA cards the non-tensor fp32 figure is the one known for all
    tflops = dev.fp32_tflops if backend == "cuda" else (dev.fp16_tflops or dev.fp32_tflops)
    d = DeviceSpeedSpec(backend=backend, bw_gbps=dev.bw_gbps, peak_tflops=tflops, name=dev.id)
    return Resolved(spec, d, backend, metric[0], metric[1], metric[2], f"{dev.id} / {spec.source} {spec.file_type}"), None


def predict(r: Resolved, params: dict | None = None) -> float:
    p = backend_params(r.backend, params)
    est = estimate_speed(r.spec, r.device, p, n_prompt=r.n_prompt, depth=r.depth)
    return est.prefill_tps if r.metric == "prefill" else est.decode_tps


def backtest(path: str | Path, params: dict | None = None) -> dict[str, Any]:
    rows = read_rows(path)
    out, errors = [], {}
    for row in rows:
        try:
            measured = float(row["value"])
        except ValueError:
            out.append({"id": row["id"], "unresolved": f"value {row['value']!r} is not a number"})
            continue
        res, why = resolve_row(row)
        if res is None:
            out.append({"id": row["id"], "category": row["category"], "test": row["test"], "unresolved": why})
            continue
        try:
            pred = predict(res, params)
        except UsageError as e:
            out.append({"id": row["id"], "category": row["category"], "test": row["test"], "unresolved": str(e)})
            continue
        err = pred / measured - 1
        out.append({"id": row["id"], "category": row["category"], "device": res.device.name, "model": res.notes,
                    "test": row["test"], "metric": res.metric, "predicted": round(pred, 3), "measured": measured,
                    "error": round(err, 4)})
        errors.setdefault((row["category"], res.metric), []).append(abs(err))
    summary = {f"{cat}/{metric}": {"mape": round(statistics.fmean(v), 4), "n": len(v)} for (cat, metric), v in sorted(errors.items())}
    all_err = [e for v in errors.values() for e in v]
    return {"rows": out, "summary": summary,
            "overall": {"mape": round(statistics.fmean(all_err), 4) if all_err else None, "n": len(all_err),
                        "unresolved": sum(1 for r in out if "unresolved" in r)}}
