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
from fitcheck.device.device_speed import backend_params
from fitcheck.estimator.speed import AttnMode, DeviceSpeedSpec, estimate_speed
from fitcheck.model.model_spec import ModelSpec

REQUIRED = ("id", "category", "device", "device_variant", "backend", "model", "params_B", "quant", "test", "value")
# the schema of phone_llm_results_dev.csv: one run per row, prefill and decode side by side
PHONE = ("device", "soc", "backend", "model", "quant", "prefill_test", "prefill_tps", "decode_test", "decode_tps", "notes")

# published model names the catalog's resolver does not know -> catalog ids with the same tensor shapes
MODEL_ALIASES = {
    "llama 7b": "llama-2-7b", "codellama 7b": "llama-2-7b", "llama-3 8b": "llama-3.1-8b", "llama-3 70b": "llama-3.1-70b",
    "qwen2.5-coder 7b": "qwen2.5-7b",
}
QUANT_ALIASES = {"fp16": "F16", "bf16": "F16", "q8": "MLX_8BIT", "q4": "MLX_4BIT", "mlx 4-bit": "MLX_4BIT",
                 "q4 (mlx 4-bit)": "MLX_4BIT", "4bit": "MLX_4BIT", "4-bit": "MLX_4BIT", "8bit": "MLX_8BIT",
                 "8-bit": "MLX_8BIT", "mlx 4bit": "MLX_4BIT", "mlx 8bit": "MLX_8BIT", "4-bit mlx": "MLX_4BIT",
                 "8-bit mlx": "MLX_8BIT"}


@dataclass(frozen=True)
class Resolved:
    spec: ModelSpec
    device: DeviceSpeedSpec
    backend: str
    metric: str  # prefill | decode
    n_prompt: int
    depth: int  # cells in the cache while a token decodes
    notes: str
    prompt_depth: int = 0  # cells under the prompt (llama-bench -d)
    mode: AttnMode = AttnMode()
    n_ubatch: int = 512  # llama-bench's -ub (its default 512)


def _phone_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each app run as two rows of the published schema (its prefill and its decode test)."""
    out = []
    for i, r in enumerate(rows, 1):
        threads = re.search(r"n_threads=(\d+)", r["notes"])
        variant = f"{r['soc']}; {threads.group(1)} threads" if threads else r["soc"]
        for metric, test, value in (("p", r["prefill_test"], r["prefill_tps"]), ("d", r["decode_test"], r["decode_tps"])):
            out.append({"id": f"{i}{metric}", "category": f"phone_{r['backend']}", "device": r["device"],
                        "device_variant": variant, "backend": f"{r.get('runtime', 'llama.cpp')} {r['backend']}",
                        "model": r["model"], "params_B": r.get("params_B", ""), "quant": r["quant"],
                        "test": test.split(" (")[0], "value": value, "notes": r["notes"]})
    return out


def read_rows(path: str | Path) -> list[dict[str, str]]:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{p}: cannot read: {e}") from None
    reader = csv.DictReader(text.splitlines())
    fields = reader.fieldnames or []
    if all(c in fields for c in PHONE):
        return _phone_rows(list(reader))
    missing = [c for c in REQUIRED if c not in fields]
    if missing:
        raise UsageError(f"{p}: missing columns {', '.join(missing)} (schema of published_benchmarks_dev.csv "
                         "or phone_llm_results_dev.csv)")
    return list(reader)


def metric_of(test: str) -> tuple[str, int, int, int] | None:
    """(prefill|decode, prompt tokens, decode depth, depth under the prompt) for a test name, or None if it is not a
    speed test. llama-bench's "pp512 @ d8192" / "tg128 @ d8192" ran on a cache filled with 8192 tokens (-d).
    llama.cpp main's "prompt eval" and Ollama's "prompt eval rate" have an unknown prompt length (512 assumed)."""
    t = test.lower().strip()
    at = re.search(r"@\s*d(\d+)\s*$", t)
    filled = int(at.group(1)) if at else 0
    m = re.match(r"pp(\d+)", t)
    if m:
        return "prefill", int(m.group(1)), 0, filled
    m = re.match(r"tg(\d+)", t)
    if m:
        return "decode", 512, filled + int(m.group(1)) // 2, 0  # mean depth over the generated tokens
    if t.startswith(("prompt", "prefill")):
        m = re.search(r"(?:prompt=|prompt )(\d+)(?: tok|$|\b)", t)
        return "prefill", int(m.group(1)) if m else 512, 0, 0
    if t.startswith(("eval", "decode", "generation")):
        m = re.search(r"~?(\d+) tok", t)
        return "decode", 512, (int(m.group(1)) // 2) if m else 64, 0
    return None


# words in a row's backend / variant / device text -> backend class, most specific first
_BACKEND_WORDS = (("hexagon", "hexagon"), ("opencl", "opencl"), ("sycl", "sycl"), ("vulkan", "vulkan"), ("rocm", "rocm"),
                  ("hip", "rocm"),
                  ("cpu only", "cpu"), ("(cpu)", "cpu"), ("llama.cpp cpu", "cpu"), ("mlx", "mlx"), ("mlc", "mlc"),
                  ("metal", "metal"), ("cuda", "cuda"))


def backend_of(row: dict[str, str]) -> str | None:
    """The backend class a row names (a "CPU only" run is never a GPU prediction); None: the device's default."""
    t = f"{row['backend']} | {row.get('device', '')}".lower()
    variant = row.get("device_variant", "").lower()
    if "cuda" in t and "metal" in t:
        return None  # "CUDA/Metal": the device decides
    if "mlx" in t and "llama.cpp" in t and "mlx" not in row["backend"].lower():
        t = t.replace("mlx", "")
    for word, cls in _BACKEND_WORDS:
        if re.search(r"(?<![a-z])" + re.escape(word) + r"(?![a-z])", t):
            return cls
    if re.match(r"cpu\b", variant):  # Geerling's "CPU" / "CPU, Cortex-A76x4" rows
        return "cpu"
    return None


def threads_of(row: dict[str, str]) -> int | None:
    m = re.search(r"(\d+)\s*threads?\b", f"{row.get('device_variant', '')} {row.get('notes', '')}")
    return int(m.group(1)) if m else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("+", " plus")).strip("-")


def _device(row: dict[str, str]):
    import device_db

    from fitcheck.errors import FitcheckError

    from fitcheck.device.names import resolve, search

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
    if apple:  # no GPU-core count given: the largest variant (a Mac Studio's usual build)
        variants = sorted((d for k, d in table.items() if k.startswith(ids[0] + "-") and re.fullmatch(r"\d+c", k[len(ids[0]) + 1:])),
                          key=lambda d: int(d.id.rsplit("-", 1)[1][:-1]))
        if variants:
            return variants[-1], None
    first_variant_word = variant.split()[0] if variant.split() else ""
    inner = re.search(r"\(([^)]*)\)", dev)
    plus = re.search(r"\+\s*(.+)$", base)  # "Intel 265K PC + RTX 4090": the card
    queries = [plus.group(1)] if plus else []
    queries += [inner.group(1)] if inner else []
    queries += [f"{base} {first_variant_word}".strip(), dev, base, re.sub(r"\s+\d+GB\b", "", base)]
    for q in queries:  # the resolver a user's name goes through, then a looser word search
        try:
            return resolve(q).device, None
        except FitcheckError:
            pass
    for q in queries:
        hits = search(q)
        if len(hits) > 1:
            # prefer the chip entry, then the one whose memory type the row names
            chips = [h for h in hits if h.kind in ("chip", "gpu", "cpu")]
            named = [h for h in chips if h.mem_type and h.mem_type.split("-")[0].lower() in text.lower()]
            hits = named or chips or hits
        if len(hits) == 1:
            return hits[0], None
    return None, f"device {dev!r} ({variant or 'no variant'}) not in the device database (or ambiguous)"


def _model(row: dict[str, str]):
    from fitcheck.model.catalog import entries, resolve, spec_from_catalog
    from fitcheck.model.names import quant_of_suffix
    from fitcheck.model.quants import get_format

    name = row["model"].split(" (")[0].strip()
    cid = next((v for k, v in MODEL_ALIASES.items() if name.lower().startswith(k)), None)
    try:
        entry = entries()[cid] if cid else resolve(name)[0]
    except UsageError:
        return None, f"model {row['model']!r} has no catalog shape"
    q = re.sub(r"\s*\(.*$", "", row["quant"].strip())
    if q.lower() == "q4" and "ollama" in f"{row['backend']} {row['quant']}".lower():
        q = "Q4_K_M"  # Ollama's default tag
    q = QUANT_ALIASES.get(q.lower(), q)
    if not q.upper().startswith("MLX"):
        q = quant_of_suffix(q)[0]  # an uploader's mix ("Q4_K_XL", "UD-Q6_K_XL"): the K-quant under it
    try:
        fmt = get_format(q)
    except UsageError:
        return None, f"quantization {row['quant']!r} is not modelled"
    return spec_from_catalog(entry, fmt.name), None


def resolve_row(row: dict[str, str]) -> tuple[Resolved | None, str | None]:
    from fitcheck.device.device_speed import from_device
    from fitcheck.errors import FitcheckError

    metric = metric_of(row["test"])
    if metric is None:
        return None, f"test {row['test']!r} is not a prefill or decode speed"
    dev, why = _device(row)
    if dev is None:
        return None, why
    backend = backend_of(row)
    try:
        d, _ = from_device(dev, backend, threads_of(row))
    except FitcheckError as e:
        return None, str(e)
    if metric[0] == "prefill" and not d.peak_tflops:
        return None, f"{dev.id} has no compute rate for {d.backend} in the database (needed for prefill)"
    spec, why = _model(row)
    if spec is None:
        return None, why
    fa = row.get("flash_attn", "").strip()  # llama-bench's -fa; blank: unknown, its old default (off)
    ub = row.get("n_ubatch", "").strip()
    return Resolved(spec, d, d.backend, metric[0], metric[1], metric[2], f"{dev.id} / {spec.source} {spec.file_type}",
                    metric[3], AttnMode(flash_attn=fa in ("1", "on", "true"), swa_full=False),
                    int(ub) if ub.isdigit() and int(ub) > 0 else 512), None


def predict(r: Resolved, params: dict | None = None) -> float:
    p = backend_params(r.device.params_class or r.backend, params)
    est = estimate_speed(r.spec, r.device, p, n_prompt=r.n_prompt, depth=r.depth, prompt_depth=r.prompt_depth,
                         mode=r.mode, n_ubatch=r.n_ubatch)
    return est.prefill_tps if r.metric == "prefill" else est.decode_tps


def backtest(path: str | Path, params: dict | None = None) -> dict[str, Any]:
    def judge(row):
        res, why = resolve_row(row)
        if res is None:
            return None, why
        try:
            pred = predict(res, params)
        except UsageError as e:
            return None, str(e)
        return {"device": res.device.name, "backend": res.backend, "model": res.notes, "metric": res.metric,
                "predicted": pred, "class": res.backend}, None

    d = score(read_rows(path), judge, "category")
    fall = depth_falls(read_rows(path), d["rows"])
    if fall:
        d["fall_by_class"] = fall
    return d


def depth_falls(rows: list[dict[str, str]], scored: list[dict[str, Any]]) -> dict[str, Any]:
    """For rows at a filled cache (llama-bench "@ dN"): the error of the fall from the same sweep's row at depth 0
    (same source, device, model, quant, flash attention and test), (predicted / predicted at 0) / (measured /
    measured at 0) - 1, MAPE by backend class and metric: what the depth terms get right or wrong apart from the
    model's error on that device at an empty cache."""
    by_id = {r["id"]: r for r in scored if "error" in r}
    key = lambda row: (row.get("source"), row["device"], row["model"], row["quant"], row.get("flash_attn", ""),  # noqa: E731
                       re.sub(r"\s*@.*$", "", row["test"].strip().lower()))
    base = {key(row): by_id[row["id"]] for row in rows if row["id"] in by_id and "@" not in row["test"]}
    out: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        got, ref = by_id.get(row["id"]), base.get(key(row))
        if got is None or ref is None or "@" not in row["test"] or re.search(r"@\s*d0\s*$", row["test"].lower()):
            continue
        err = (1 + got["error"]) / (1 + ref["error"]) - 1
        got["fall_error"] = round(err, 4)
        out.setdefault((got["backend"], got["metric"]), []).append(abs(err))
    return {f"{a}/{b}": {"mape": round(statistics.fmean(v), 4), "n": len(v)} for (a, b), v in sorted(out.items())}


def score(rows: list[dict[str, str]], judge, category: str) -> dict[str, Any]:
    """Each row's measured `value` against what `judge(row)` predicts ({"predicted", "metric", "class", ...} or
    (None, why)): the rows with their errors (unresolved ones with the reason), MAPE per `category` and metric,
    per class and overall."""
    out, errors, by_class = [], {}, {}
    for row in rows:
        try:
            measured = float(row["value"])
        except ValueError:
            out.append({"id": row["id"], "unresolved": f"value {row['value']!r} is not a number"})
            continue
        got, why = judge(row)
        if got is None:
            out.append({"id": row["id"], "category": row[category], "test": row["test"], "unresolved": why})
            continue
        err = got["predicted"] / measured - 1
        out.append({"id": row["id"], "category": row[category], "test": row["test"],
                    **{k: v for k, v in got.items() if k != "class"}, "predicted": round(got["predicted"], 3),
                    "measured": measured, "error": round(err, 4)})
        errors.setdefault((row[category], got["metric"]), []).append(abs(err))
        by_class.setdefault((got["class"], got["metric"]), []).append(abs(err))
    mape = lambda d: {f"{a}/{b}": {"mape": round(statistics.fmean(v), 4), "n": len(v)}  # noqa: E731
                      for (a, b), v in sorted(d.items())}
    every = [e for v in errors.values() for e in v]
    return {"rows": out, "summary": mape(errors), "by_class": mape(by_class),
            "overall": {"mape": round(statistics.fmean(every), 4) if every else None, "n": len(every),
                        "unresolved": sum(1 for r in out if "unresolved" in r)}}


def samples_by_class(rows: list[dict[str, str]], classes) -> dict[str, list]:
    """(resolved row, measured value, row) per backend class; prompts of unknown length (main's or Ollama's
    "prompt eval") are left out of prefill, and so are rows whose `fit` column says no (with its reason)."""
    out: dict[str, list] = {c: [] for c in classes}
    for row in rows:
        if row.get("fit", "").startswith("no"):  # kept and backtested, not fitted: an old build, a reported fault
            continue
        res, _ = resolve_row(row)
        if res is None or res.backend not in out:
            continue
        if res.metric == "prefill" and not re.match(r"pp\d|prompt \d+ tok|prefill prompt=\d", row["test"].lower()):
            continue
        try:
            out[res.backend].append((res, float(row["value"]), row))
        except ValueError:
            continue
    return out


def held_out(path: str | Path, min_rows: int = 8) -> dict[str, Any]:
    """Per backend class in the file: each device family (a model, for one-phone classes) predicted by parameters
    refitted without it. The refit uses this file's rows only; the shipped parameters are not touched."""
    from fitcheck.calibration.class_fit import fit, leave_one_out, offload_of, type_keys
    from fitcheck.device.backends import BACKENDS
    from fitcheck.device.device_speed import fitted_params, params_for

    out = {}
    for backend, samples in samples_by_class(read_rows(path), BACKENDS).items():
        if len(samples) < min_rows:
            continue
        # what the class leaves to the CPU (and the CPU class's parameters) as shipped
        shipped = params_for(backend)[0] if backend in fitted_params()["backends"] else None
        off = offload_of(shipped) if shipped else None
        full = fit(samples, type_keys(samples, off), off, tuple(shipped.pp_arch) if shipped else ())
        lo = leave_one_out(backend, samples, full)
        out[backend] = {metric: {"mape": round(statistics.fmean(v), 4), "n": len(v)} for metric, v in sorted(lo.items())}
    return out
