"""Backtest the placement model on published split runs (device_db/published_splits_dev.csv's schema): each row's
host, devices, link, model and llama.cpp flags asked as a user would ask `fitcheck estimate`, its rate predicted
and compared; MAPE per kind of split (partial offload, experts on the CPU, several GPUs, RPC). Rows that cannot be
resolved are kept with the reason."""

from __future__ import annotations

import csv
import re
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from fitcheck.errors import FitcheckError, UsageError

GENERIC_HOST = "Ryzen 9 7950X 64GB"  # a host not stated, where it only holds the input embeddings
COLUMNS = ("id", "kind", "host", "devices", "link", "model", "quant", "options", "test", "value")
_LINK_WORDS = (("thunderbolt 5", "tb5"), ("thunderbolt 4", "tb4"), ("thunderbolt", "tb4"), ("tb5", "tb5"), ("tb4", "tb4"),
               ("25g", "25gbe"), ("10g", "10gbe"), ("2.5g", "2.5gbe"), ("1g", "1gbe"), ("gigabit", "1gbe"),
               ("wi-fi", "wifi6"), ("wifi", "wifi6"), ("localhost", "loopback"), ("loopback", "loopback"))


def is_split_file(path: str | Path) -> bool:
    try:
        head = Path(path).read_text().splitlines()[:1]
    except (OSError, UnicodeDecodeError):
        return False
    return bool(head) and all(c in head[0].split(",") for c in ("kind", "devices", "options"))


def parse_options(text: str):
    """llama.cpp flags as published -> (SplitOptions, settings changes). Flags fitcheck does not model are ignored."""
    from fitcheck.estimator.placement import SplitOptions

    text = re.sub(r"\([^)]*\)", " ", text or "")  # prose in parentheses ("(4K ctx)", "(defaults otherwise ...)")
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise UsageError(f"options {text!r}: {e}") from None
    opts: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    i = 0
    while i < len(words):
        key, eq, val = words[i].partition("=")
        nxt = words[i + 1] if i + 1 < len(words) else ""

        def take() -> str:
            nonlocal i
            if eq:
                return val
            i += 1
            return nxt

        if key in ("-ngl", "--n-gpu-layers", "--gpu-layers"):
            v = take()
            opts["n_gpu_layers"] = None if v.lower() in ("all", "auto", "-1") or _int(v) >= 99 else _int(v)
        elif key in ("--n-cpu-moe", "-ncmoe"):
            opts["n_cpu_moe"] = _int(take())
        elif key in ("--cpu-moe", "-cmoe"):
            opts["cpu_moe"] = True
        elif key in ("-ot", "--override-tensor"):
            for item in take().split(";"):
                pat, _, dev = item.rpartition("=")
                opts.setdefault("overrides", []).append((pat, dev))
        elif key in ("-nkvo", "--no-kv-offload"):
            opts["no_kv_offload"] = True
        elif key in ("-ts", "--tensor-split"):
            opts["tensor_split"] = tuple(float(x) for x in re.split(r"[,/]", take()))
        elif key in ("-sm", "--split-mode"):
            opts["split_mode"] = take()
        elif key in ("-fa", "--flash-attn"):
            v = take() if (eq or nxt.lower() in ("0", "1", "on", "off", "auto")) else "1"
            sets["flash_attn"] = v.lower() in ("1", "on", "auto", "true")
        elif key in ("-ub", "--ubatch-size"):
            sets["n_ubatch"] = _int(take())
        elif key in ("-b", "--batch-size"):
            sets["n_batch"] = _int(take())
        elif key in ("-c", "--ctx-size"):
            sets["n_ctx"] = _int(take())
        elif key in ("-ctk", "--cache-type-k", "-ctv", "--cache-type-v"):
            sets["type_k" if "k" in key[-1:] or key.endswith("-k") else "type_v"] = take().lower()
        i += 1
    if "overrides" in opts:
        opts["overrides"] = tuple(opts["overrides"])
    if sets.get("type_v", "f16") not in ("f16", "f32", "bf16"):
        sets.setdefault("flash_attn", True)  # a quantized V cache runs only with flash attention (llama.cpp: auto)
    return SplitOptions(**opts), sets


def _int(v: str) -> int:
    m = re.match(r"\d+", v.strip())
    if not m:
        raise UsageError(f"{v!r} is not a count")
    return int(m.group())


def _link(text: str) -> str | None:
    t = (text or "").lower()
    m = re.search(r"(\d+(?:\.\d+)?)\s*gbit/s.*?(\d+(?:\.\d+)?)\s*ms", t)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    return next((k for w, k in _LINK_WORDS if w in t), None)


def _resolve(name: str, backend: str | None = None):
    from fitcheck.device.resolve import resolve_target

    # a host as published ("AMD Ryzen 5 5600X 6C/12T, 30GB RAM limit in ... (host 64GB DDR4-2933)"): its first
    # part, with the first memory size the description gives
    first = re.split(r"[,(;]", name)[0].strip()
    ram = re.search(r"\b(\d+)\s*GB\b", name, re.I)
    for q in dict.fromkeys((name, f"{first} {ram.group(1)}GB" if ram else first, first)):
        try:
            return resolve_target(q, backend=backend)
        except FitcheckError:
            continue
    raise UsageError(f"device {name!r} not in the device database")


def predict_row(row: dict[str, str]) -> tuple[float | None, str | None]:
    from fitcheck.backtest import _model, metric_of
    from fitcheck.estimator.placement import memory, place, speed
    from fitcheck.estimator.settings import RuntimeSettings
    from fitcheck.split import units_for

    metric = metric_of(row["test"])
    if metric is None:
        return None, f"test {row['test']!r} is not a prefill or decode speed"
    # a draft model or MTP in the flags (or said so in the options' prose) speeds decode by what it accepts
    said = row.get("options", "").lower()
    if metric[0] == "decode" and re.search(r"\bmtp (draft )?(on|enabled)|mtp draft|draft model|-md\b|--spec-type|draft-mtp",
                                           said):
        return None, "speculative decoding (a draft model or MTP) is not modelled"
    spec, why = _model({"model": row["model"], "quant": row["quant"], "backend": "llama.cpp"})
    if spec is None:
        return None, why
    try:
        opts, sets = parse_options(row.get("options", ""))
        if "n_ubatch" in sets:  # llama-bench's and llama-server's batch is 2048 unless given
            sets.setdefault("n_batch", max(2048, sets["n_ubatch"]))
        link = _link(row.get("link", "")) if row["kind"] == "rpc" else None
        if row["kind"] == "rpc" and link is None:
            return None, f"link {row.get('link')!r} is not stated as a rate and round trip or a known kind"
        from fitcheck.backtest import backend_of

        backend = backend_of({"backend": f"{row.get('options', '')} {row.get('notes', '')}", "device": ""})
        def pick(name: str, backend: str | None = None, named: str | None = backend):
            # the backend the row names for every device but the host (which is asked for its CPU)
            return _resolve(name, backend or (named if named not in (None, "cpu") else None))
        host = (row.get("host") or "").strip()
        if re.match(r"(not stated|unknown|n/a|$)", host, re.I):
            if row["kind"] in ("partial_offload", "experts_on_cpu"):
                return None, "the host is not stated (its RAM and CPU carry part of this split)"
            host = GENERIC_HOST  # everything offloaded: the host holds only the input embeddings
        units, _ = units_for(row["devices"], host, link, pick)
        s = replace(RuntimeSettings(runtime="llama.cpp"), **sets)
        pl = place(spec, units, opts)
        over = [m.name for m in memory(spec, s, pl) if m.fit.verdict not in ("fits", "tight")]
        sp = speed(spec, pl, s, n_prompt=metric[1] if metric[0] == "prefill" else 0,
                   depth=metric[2] if metric[0] == "decode" else 0)
    except (FitcheckError, ValueError, StopIteration) as e:
        return None, str(e) or type(e).__name__
    value = sp.prefill_tps if metric[0] == "prefill" else sp.decode_tps
    if value is None:
        return None, "no compute rate for a device of the split (needed for prefill)"
    return value, (f"over memory on {', '.join(over)} by fitcheck's estimate" if over else None)


def backtest_splits(path: str | Path) -> dict[str, Any]:
    try:
        rows = list(csv.DictReader(Path(path).read_text().splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read: {e}") from None
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise UsageError(f"{path}: missing columns {', '.join(missing)} (schema of published_splits_dev.csv)")
    def judge(row):
        pred, why = predict_row(row)
        if pred is None:
            return None, why
        metric = "prefill" if row["test"].lower().startswith(("pp", "prompt")) else "decode"
        return {"device": f"{row['devices']} | {row.get('host', '')}", "metric": metric, "predicted": pred,
                "class": row["kind"], **({"note": why} if why else {})}, None

    from fitcheck.backtest import score

    return score(rows, judge, "kind")
