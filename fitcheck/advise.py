"""`fitcheck advise`: the best quantization that fits with headroom and meets a target speed.

Quality cost of each quantization comes from llama.cpp's published LLaMA-3-8B
scoreboard (perplexity and KL-divergence vs F16, without an importance matrix
where listed; fitcheck/data/quant_quality.csv keeps the source). When nothing
fits, the nearest ways out are computed: the iOS increased-memory-limit
entitlement, partial offload to system RAM beside a discrete GPU, a shorter
context, a quantized KV cache, a lower quantization, a smaller model.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fitcheck.answer import check_target_tps
from fitcheck.errors import NoSpeedError
from fitcheck.estimator.evaluate import USABLE_TPS, Target, evaluate
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import DeviceSpeedSpec
from fitcheck.model.catalog import ALIASES, entries, resolve, spec_from_catalog

CANDIDATES = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_K_M", "Q4_K_S", "IQ4_XS", "Q4_0", "Q3_K_M",
              "Q3_K_S", "Q2_K")
QUALITY_MODEL = "Llama-3-8B"


@lru_cache(maxsize=1)
def quality_table() -> dict[str, dict[str, Any]]:
    """quant -> {ppl_delta, kld_mean, imatrix, source}: published, no-imatrix rows preferred."""
    text = files("fitcheck").joinpath("data/quant_quality.csv").read_text()
    out: dict[str, dict[str, Any]] = {}
    for r in csv.DictReader(text.splitlines()):
        if r["model"] != QUALITY_MODEL or not r["kld_mean"]:
            continue
        no_imatrix = "imatrix=None" in r["notes"]
        cur = out.get(r["quant"])
        if cur is None or (no_imatrix and not cur["no_imatrix"]):
            out[r["quant"]] = {"ppl_delta": float(r["ppl_delta"]), "kld_mean": float(r["kld_mean"]),
                               "no_imatrix": no_imatrix, "source": r["source"][:160]}
    return out


def _evaluate(entry, quant: str, s: RuntimeSettings, target: Target, usable: int | None = None) -> dict[str, Any]:
    ev = evaluate(spec_from_catalog(entry, quant), s, target, usable_bytes=usable)
    q = quality_table().get(quant, {})
    return {**ev.row(), "model": entry.id, "speed_known": ev.speed is not None,
            "ppl_delta": q.get("ppl_delta"), "kld_mean": q.get("kld_mean")}


def _ok(row: dict, target_tps: float | None) -> bool:
    fast = target_tps is None or (row["decode_tps"] is not None and row["decode_tps"] >= target_tps)
    return row["verdict"] == "fits" and fast


def advise(model: str, target: Target, settings: RuntimeSettings | None = None,
           target_tps: float | None = None) -> dict[str, Any]:
    check_target_tps(target_tps)
    if target_tps is not None and target.speed is None:
        raise NoSpeedError("a speed target needs the device's speed (probe this device, or give --bandwidth-gbps)")
    s = settings or RuntimeSettings()
    entry, alias = resolve(model)
    rows = [_evaluate(entry, q, s, target) for q in CANDIDATES]
    # quality order: lowest KL-divergence first (F16 best)
    ranked = sorted(rows, key=lambda r: (r["kld_mean"] if r["kld_mean"] is not None else 9, -r["bits_per_weight"]))
    choice = next((r for r in ranked if _ok(r, target_tps)), None)
    out: dict[str, Any] = {"model": entry.id, "model_name": entry.name, "alias": alias, "target_tps": target_tps,
                           "device": target.to_dict(), "usable_bytes": target.usable_bytes, "n_ctx": s.n_ctx,
                           "choice": choice, "candidates": ranked, "warnings": list(target.warnings),
                           "quality_source": f"llama.cpp perplexity scoreboard, {QUALITY_MODEL} (fitcheck/data/quant_quality.csv)"}
    if choice is None:
        out["ways_out"] = ways_out(entry, s, target, target_tps)
    return out


def _entitlement_way(entry, s, target: Target, target_tps) -> dict[str, Any] | None:
    alt = target.alternatives
    if alt.entitlement_usable_bytes is None:
        return None
    rows = [_evaluate(entry, q, s, target, alt.entitlement_usable_bytes) for q in CANDIDATES]
    ok = sorted((r for r in rows if _ok(r, target_tps)), key=lambda r: r["kld_mean"] if r["kld_mean"] is not None else 9)
    if not ok:
        return None
    return {"way": f"the increased-memory-limit entitlement ({alt.entitlement_rule}) at {ok[0]['quant']}", **ok[0]}


def _offload_way(entry, s, target: Target, target_tps) -> dict[str, Any] | None:
    """The split llama.cpp would run beside the card: the most layers on the GPU that fit its memory (-ngl), or for an
    MoE the fewest layers' experts kept in system RAM (--n-cpu-moe), whichever is faster; memory and speed from the
    placement model (fitcheck.estimator.placement), the same terms as every other answer."""
    from fitcheck.device.device_speed import backend_params
    from fitcheck.estimator.placement import SplitOptions, Unit, memory, place, speed
    from fitcheck.split import command_line, pcie_link

    host, dev, q = target.alternatives.host, target.speed, "Q4_K_M"
    spec = spec_from_catalog(entry, q)
    host_speed = DeviceSpeedSpec("cpu", host.bw_gbps, None, name="host") if host.bw_gbps else None
    units = (Unit("system RAM", "host", host_speed, backend_params("cpu") if host_speed else None,
                  host.usable_bytes if host.usable_bytes is not None else 1 << 50),
             Unit(target.label, "gpu", dev, target.params, target.usable_bytes, pcie_link(target.label),
                  offload_op=bool(dev and dev.backend in ("cuda", "vulkan", "rocm"))))

    def first_fit(tries):
        for opts in tries:
            pl = place(spec, units, opts)
            mem = memory(spec, s, pl)
            if mem[1].fit.verdict != "fits" or (host.usable_bytes is not None and mem[0].fit.verdict != "fits"):
                continue  # over the card, or what stays beside it is over system RAM
            return opts, pl, mem, speed(spec, pl, s) if host_speed and dev is not None and target.params else None
        return None

    found = [f for f in (first_fit(SplitOptions(n_gpu_layers=n) for n in range(spec.n_layer + 1, 0, -1)),
                         first_fit(SplitOptions(n_cpu_moe=k) for k in range(spec.n_layer + 1)) if spec.n_expert else None)
             if f]
    if not found:
        return None
    opts, pl, mem, sp = max(found, key=lambda f: f[3].decode_tps if f[3] else 0)
    row = {"model": entry.id, "quant": q, "gpu_layers": pl.layer_at.count(1), "n_layer": spec.n_layer,
           "n_cpu_moe": opts.n_cpu_moe, "device_bytes": mem[1].total_bytes, "host_bytes": mem[0].total_bytes,
           "total_bytes": mem[0].total_bytes + mem[1].total_bytes, "verdict": "fits",
           "decode_tps": sp.decode_tps if sp else None, "prefill_tps": sp.prefill_tps if sp else None,
           "host_source": host.source, "command": command_line(spec, pl, opts, s)}
    if not _ok(row, target_tps):
        return None
    where = f"{host.usable_bytes / 1e9:.1f} GB system RAM usable" if host.usable_bytes else "system RAM not known: check it"
    how = (f"the experts of {opts.n_cpu_moe} layers in system RAM" if opts.n_cpu_moe
           else f"{row['gpu_layers']} of {spec.n_layer} layers on the GPU")
    return {"way": f"partial offload at {q}: {how} ({mem[1].total_bytes / 1e9:.1f} GB), "
                   f"{mem[0].total_bytes / 1e9:.1f} GB in system RAM ({where}); {row['command']}", **row}


def _paging_way(entry, s: RuntimeSettings, target: Target, target_tps) -> dict[str, Any] | None:
    """Paging from storage is a way out only when its (slow) speed still meets the target; else it is said so."""
    rows = [r for r in (_evaluate(entry, q, s, target) for q in ("Q4_K_M", "Q3_K_M", "Q2_K")) if r["verdict"] == "pages"]
    if not rows:
        return None
    best = max(rows, key=lambda r: r["decode_tps"] or 0)
    rate = f"~{best['decode_tps']:.2f} t/s" if best["decode_tps"] else "an unknown speed"
    need = USABLE_TPS if target_tps is None else target_tps  # paging is a way out only at a usable pace
    if best["decode_tps"] is not None and best["decode_tps"] >= need:
        return {"way": f"let it page from storage at {best['quant']}: runs at {rate}, meeting {need:g} t/s", **best}
    return {"way": f"not a way out: paging from storage at {best['quant']} runs at {rate}, under {need:g} t/s",
            "not_a_way": True, **best}


def ways_out(entry, s: RuntimeSettings, target: Target, target_tps) -> list[dict[str, Any]]:
    """Nearest changes that make a run fit (and meet the target), each with its numbers."""
    q = "Q4_K_M"
    alt = target.alternatives
    found = [w for w in (_entitlement_way(entry, s, target, target_tps),
                         _offload_way(entry, s, target, target_tps) if alt.host else None,
                         _paging_way(entry, s, target, target_tps)) if w]
    for ctx in sorted({c for c in (s.n_ctx // 2, s.n_ctx // 4, 2048, 1024, 512) if 256 <= c < s.n_ctx}, reverse=True):
        row = _evaluate(entry, q, replace(s, n_ctx=ctx), target)
        if _ok(row, target_tps):
            found.append({"way": f"shorter context: {ctx} tokens at {q}", **row})
            break
    kv = replace(s, type_k="q8_0", type_v="q8_0", flash_attn=True)
    row = _evaluate(entry, q, kv, target)
    if _ok(row, target_tps):
        found.append({"way": f"q8_0 KV cache with flash attention at {q}", **row})
    for lower in ("Q3_K_M", "Q2_K"):
        row = _evaluate(entry, lower, s, target)
        if not _ok(row, target_tps):
            continue
        found.append({"way": f"lower quantization {lower} (quality cost: KLD {row['kld_mean']})", **row})
        break
    smaller = sorted({entries()[v] for v in ALIASES.values()}, key=lambda e: -e.params_b_published)
    for e in smaller:
        if e.params_b_published >= entry.params_b_published or e.n_expert:
            continue
        row = _evaluate(e, q, s, target)
        if _ok(row, target_tps):
            found.append({"way": f"smaller model: {e.name} at {q}", **row})
            break
    if not [w for w in found if not w.get("not_a_way")]:
        found.append({"way": "none of: shorter context, q8_0 KV cache, Q3_K_M/Q2_K, a smaller model"
                             + (", the entitlement" if alt.entitlement_usable_bytes else "")
                             + (", partial offload" if alt.host else ""),
                      "verdict": "killed"})
    return found
