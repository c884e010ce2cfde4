"""Rich tables for the CLI; each takes the same dict the command prints with --json."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def fmt_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(k, "-" if v is None else str(v))
    return t


def inspect_view(console: Console, d: dict[str, Any]) -> None:
    layers = d["sliding_layers"]
    swa = (
        f"{d['sliding_window']} tokens on {len(layers)}/{d['block_count']} layers"
        if d["sliding_window"]
        else "none"
    )
    rows = [
        ("file", d["path"] + (f" (+{d['splits'] - 1} more parts)" if d["splits"] > 1 else "")),
        ("architecture", d["architecture"]),
        ("name", d["name"]),
        ("size label", d["size_label"]),
        ("parameters", f"{d['parameter_count']:,} ({fmt_count(d['parameter_count'])})"),
        ("file size", f"{fmt_bytes(d['file_size_bytes'])} ({d['file_size_bytes']:,} bytes)"),
        ("file type", d["file_type"]),
        ("bits per weight", f"{d['bits_per_weight']:.2f}"),
        ("context length", d["context_length"]),
        ("embedding length", d["embedding_length"]),
        ("blocks", d["block_count"]),
        ("heads / KV heads", f"{d['head_count']} / {d['head_count_kv']}"),
        ("key / value head dim", f"{d['key_length']} / {d['value_length']}"),
        ("feed-forward length", d["feed_forward_length"]),
        ("experts (used)", f"{d['expert_count']} ({d['expert_used_count']})" if d["expert_count"] else "none"),
        ("sliding window", swa),
        ("vocab size", d["vocab_size"]),
        ("rope", ", ".join(f"{k}={v}" for k, v in d["rope"].items()) or None),
    ]
    console.print(kv_table("Model", rows))
    t = Table(title="Tensor types", title_justify="left")
    for col in ("type", "tensors", "elements", "bytes", "share"):
        t.add_column(col, justify="right" if col != "type" else "left")
    total = d["tensor_data_bytes"] or 1
    for name, e in d["tensor_types"].items():
        t.add_row(name, str(e["count"]), f"{e['elements']:,}", fmt_bytes(e["bytes"]), f"{100 * e['bytes'] / total:.1f} %")
    console.print(t)


def _gbps(v) -> str:
    return f"{v:.1f} GB/s" if isinstance(v, (int, float)) else "-"


def _status(d: dict) -> str | None:
    if not isinstance(d, dict) or d.get("status") in (None, "ok"):
        return None
    return f"{d.get('status')}: {d.get('reason')}"


def profile_view(console: Console, p: dict[str, Any]) -> None:
    mem, cpu, bw, comp, disk, rt = (p.get(k, {}) for k in ("memory", "cpu", "bandwidth", "compute", "disk", "runtime"))
    rows: list[tuple[str, Any]] = [
        ("CPU", _status(cpu) or f"{cpu.get('model')} — {cpu.get('physical_cores')} cores / {cpu.get('logical_cores')} threads"),
        ("ISA", ", ".join(cpu.get("flags", [])) or None),
        ("caches", ", ".join(f"{k} {fmt_bytes(v)}" for k, v in (cpu.get("caches_bytes") or {}).items()) or None),
        ("RAM", _status(mem) or f"{fmt_bytes(mem.get('total_bytes'))} total, {fmt_bytes(mem.get('available_bytes'))} available"),
        ("memory limit", f"{fmt_bytes(mem.get('limit_bytes'))} ({mem.get('limit_source')})" if not _status(mem) else None),
        ("swap", fmt_bytes(mem.get("swap_total_bytes"))),
    ]
    if _status(bw):
        rows.append(("bandwidth", _status(bw)))
    else:
        rows += [
            ("bandwidth read / copy / triad", f"{_gbps(bw.get('read_gbps'))} / {_gbps(bw.get('copy_gbps'))} / {_gbps(bw.get('triad_gbps'))}"),
            ("bandwidth method", f"{bw.get('method')}; {fmt_bytes(bw.get('array_bytes'))} arrays ({bw.get('llc_multiple')}x LLC), best of {bw.get('repetitions')}"),
            ("read by threads", ", ".join(f"{k}: {v:.1f}" for k, v in (bw.get("thread_scaling_read_gbps") or {}).items()) + " GB/s"),
            ("cache-resident read", f"{_gbps(bw.get('cache_resident_read_gbps'))} over {fmt_bytes(bw.get('cache_resident_bytes'))}"),
        ]
    rows.append(("CPU GEMM fp32 / fp64", _status(comp) or f"{comp.get('fp32_gflops')} / {comp.get('fp64_gflops')} GFLOP/s ({(comp.get('blas') or {}).get('name')})"))
    for acc in p.get("accelerators", []):
        if acc.get("status") != "ok":
            rows.append((f"accelerator ({acc.get('kind')})", _status(acc)))
        elif acc.get("kind") == "mlx":
            rows.append(("mlx", f"{acc['backend']}: {acc['fp32_gflops']} GFLOP/s fp32, {acc['fp16_gflops']} fp16, copy {_gbps(acc['copy_gbps'])}"
                         + ("" if acc.get("throughput_reference") else " — CPU, not a throughput reference")))
        else:
            rows.append((acc.get("kind", "gpu"), f"{acc.get('name')} {fmt_bytes(acc.get('memory_bytes'))}, driver {acc.get('driver')}"))
    rows.append(("disk read", _status(disk) or f"{_gbps(disk.get('read_gbps'))} (cache dropped: {disk.get('cache_drop')})"))
    rows.append(("llama.cpp", _status(rt) or f"llama-cpp-python {rt.get('llama_cpp_python')}, backends {', '.join(rt.get('backends', []))}"
                 + (", AMX" if rt.get("amx") else "")))
    console.print(kv_table(f"Device profile ({'quick' if p.get('quick') else 'full'}, {p.get('created')})", rows))


VERDICT_STYLE = {"fits": "bold green", "tight": "bold yellow", "does_not_fit": "bold red"}


def estimate_view(console: Console, d: dict[str, Any]) -> None:
    m, mem, fit, b = d["model"], d["memory"], d["fit"], d["basis"]
    s = b["settings"]
    title = f"{m['name']} ({m['quant']}, {fmt_count(m['parameter_count'])} params, {m['bits_per_weight']:.2f} bpw)"
    t = Table(title=title, title_justify="left")
    t.add_column("component")
    t.add_column("reserved", justify="right")
    t.add_column("note", overflow="fold")
    swa = f", SWA layers {mem['kv_cells_swa']} cells" if mem["kv_cells_swa"] else ""
    t.add_row("weights", fmt_bytes(mem["weights_bytes"]), "mmapped, populated at load")
    t.add_row("KV cache", fmt_bytes(mem["kv_cache_bytes"]), f"{mem['kv_cells']} cells{swa}, K {s['type_k']} / V {s['type_v']}")
    t.add_row("compute buffer", fmt_bytes(mem["compute_bytes"]), f"worst-case graph, ubatch {s['n_ubatch']}; ~{fmt_bytes(mem['compute_resident_bytes'])} touched in a run")
    t.add_row("output", fmt_bytes(mem["output_bytes"]), "logits of one sequence")
    t.add_row("runtime overhead", fmt_bytes(mem["overhead_bytes"]), f"{s['runtime']} process + vocabulary")
    t.add_row("[bold]total (reserved)[/bold]", f"[bold]{fmt_bytes(mem['total_bytes'])}[/bold]", f"resident after a run ~{fmt_bytes(mem['resident_bytes'])}")
    if mem["gpu_layers"]:
        t.add_row("on accelerator", fmt_bytes(mem["device_bytes"]), f"{mem['gpu_layers']} layers offloaded; host {fmt_bytes(mem['host_bytes'])}")
    console.print(t)
    style = VERDICT_STYLE[fit["verdict"]]
    console.print(f"[{style}]{fit['verdict'].replace('_', ' ')}[/{style}]: needs {fmt_bytes(fit['needed_bytes'])} "
                  f"(reserved) of {fmt_bytes(fit['usable_bytes'])} usable — headroom {fmt_bytes(fit['headroom_bytes'])}")
    if d.get("speed"):
        console.print(speed_line(d), soft_wrap=True, highlight=False)
    console.print(f"[dim]context {s['n_ctx']}, flash attention {'on' if s['flash_attn'] else 'off'}, swa_full {s['swa_full']}; "
                  f"{b['memory']}[/dim]", soft_wrap=True)
    if "alias" in b:
        console.print(f"[dim]{b['alias']}[/dim]")


def models_view(console: Console, d: dict[str, Any]) -> None:
    t = Table(title="Model catalog", title_justify="left")
    for c in ("id", "name", "arch", "params (B)", "layers", "trained ctx", "verification"):
        t.add_column(c)
    for m in d["models"]:
        t.add_row(m["id"], m["name"], m["arch"], str(m["params_b_published"]), str(m["n_layer"]), str(m["n_ctx_train"]), m["verification"])
    console.print(t)
    console.print("aliases: " + ", ".join(f"{k} -> {v}" for k, v in d["aliases"].items()), soft_wrap=True)
    console.print("quantizations: " + ", ".join(d["quants"]), soft_wrap=True)


def answer_header(d: dict[str, Any]) -> str:
    if "device" in d:
        v = d["device"]
        return (f"[bold]{v['name']}[/bold] ({v['ram_gb']} GB, {v.get('os', 'GPU')}): {d['usable_bytes'] / 1e9:.1f} GB usable "
                f"({v['memory_rule']}), bandwidth {_gbps(v['bw_gbps'])}")
    p = d["profile"]
    return (f"[bold]This device[/bold]: {p['cpu']}, {d['usable_bytes'] / 1e9:.1f} GB usable, "
            f"read bandwidth {_gbps(p['read_gbps'])} (profile {p['created']})")


def answer_view(console: Console, d: dict[str, Any]) -> None:
    console.print(answer_header(d), soft_wrap=True)
    sizes = list(dict.fromkeys(r["size"] for r in d["rows"]))
    quants = list(dict.fromkeys(r["quant"] for r in d["rows"]))
    t = Table(title=f"Memory needed (GB reserved, context {d['settings']['n_ctx']}), verdict, decode / prefill t/s",
              title_justify="left")
    t.add_column("quant")
    for size in sizes:
        name = next(r["model"] for r in d["rows"] if r["size"] == size)
        t.add_column(f"{size.upper()} ({name})", justify="right")
    by = {(r["size"], r["quant"]): r for r in d["rows"]}
    for q in quants:
        cells = []
        for size in sizes:
            r = by[(size, q)]
            style = VERDICT_STYLE[r["verdict"]].replace("bold ", "")
            ub = f" {r['decode_tps']:.1f}" if r["decode_tps"] else ""
            ub += f"/{r['prefill_tps']:.0f}" if r["prefill_tps"] else ""
            word = {"fits": "fits", "tight": "tight", "does_not_fit": "no"}[r["verdict"]]
            cells.append(f"[{style}]{r['total_bytes'] / 1e9:.2f} {word}[/{style}]{ub}")
        t.add_row(q, *cells)
    console.print(t)
    for line in d["answers"]:
        console.print(line, soft_wrap=True)
    console.print(f"[dim]t/s: {d['speed_basis']}; prefill of a 512-token prompt. Verdict on the {d['verdict_uses']}.[/dim]",
                  soft_wrap=True)


def devices_view(console: Console, devs: list) -> None:
    t = Table(title=f"Devices ({len(devs)})", title_justify="left")
    for c in ("id", "kind", "year", "RAM GB", "GB/s", "fp16 TFLOPS", "OS / backend"):
        t.add_column(c, overflow="fold", no_wrap=c == "id", justify="right" if c in ("GB/s", "fp16 TFLOPS") else "left")
    for d in devs:
        t.add_row(d.id, d.kind, str(d.year or "-"), "/".join(map(str, d.ram_options_gb)) or "-",
                  f"{d.bw_gbps:g}" if d.bw_gbps else "-", f"{d.fp16_tflops:g}" if d.fp16_tflops else "-",
                  f"{d.os or '-'} / {d.backend}")
    console.print(t)


def speed_line(d: dict[str, Any]) -> str:
    sp, si = d["speed"], d["basis"]["speed_inputs"]
    pre = f"prefill ~{sp['prefill_tps']:.0f} t/s" if sp.get("prefill_tps") else "prefill: unknown (no FLOPS)"
    ttft = f", TTFT ~{sp['ttft_s']:.1f} s for {si['n_prompt']} tokens" if sp.get("ttft_s") else ""
    return (f"speed: decode ~{sp['decode_tps']:.1f} t/s, {pre}{ttft} "
            f"[{si['backend']}, {si['bw_gbps']} GB/s, {'%.3g' % si['tflops'] if si['tflops'] else '?'} TFLOPS; "
            f"{'calibrated' if si['calibrated'] else 'not calibrated'}]")


def backtest_view(console: Console, d: dict[str, Any]) -> None:
    t = Table(title="Backtest: predicted vs measured", title_justify="left")
    for c in ("id", "category", "device", "test", "predicted", "measured", "error"):
        t.add_column(c, justify="right" if c in ("predicted", "measured", "error") else "left", overflow="fold")
    for r in d["rows"]:
        if "unresolved" not in r:
            t.add_row(str(r["id"]), r["category"], r["device"], r["test"], f"{r['predicted']:.2f}", f"{r['measured']:.2f}",
                      f"{r['error']:+.1%}")
    console.print(t)
    s = Table(title="Mean absolute percentage error", title_justify="left")
    for c in ("category / metric", "MAPE", "rows"):
        s.add_column(c)
    for k, v in d["summary"].items():
        s.add_row(k, f"{v['mape']:.1%}", str(v["n"]))
    o = d["overall"]
    s.add_row("[bold]all[/bold]", f"{o['mape']:.1%}" if o["mape"] is not None else "-", str(o["n"]))
    console.print(s)
    un = [r for r in d["rows"] if "unresolved" in r]
    if un:
        console.print(f"{len(un)} rows unresolved (listed with --json); reasons:", highlight=False)
        from collections import Counter

        for why, n in Counter(r["unresolved"] for r in un).most_common(8):
            console.print(f"  {n:>3} x {why}", highlight=False, soft_wrap=True)


def calibration_view(console: Console, c: dict[str, Any]) -> None:
    t = Table(title=f"Calibration ({c['source']}, {c['created']})", title_justify="left")
    for col in ("model", "type", "size", "prefill t/s", "decode t/s", "predicted before (pp / tg)", "peak RSS"):
        t.add_column(col, justify="left" if col in ("model", "type") else "right")
    for r in c["runs"]:
        pp = f"{r['prompt_tps']:.1f} ± {r['prompt_tps_std'] or 0:.1f}" if r["prompt_tps"] else "-"
        tg = f"{r['generation_tps']:.2f} ± {r['generation_tps_std'] or 0:.2f}" if r["generation_tps"] else "-"
        pred = (f"{r['predicted_prefill_tps']:.1f} / {r['predicted_decode_tps']:.2f}"
                if r.get("predicted_decode_tps") else "-")
        t.add_row(r["model"], r["weight_type"], fmt_bytes(r["weights_bytes"]), pp, tg, pred, fmt_bytes(r["peak_memory_bytes"]))
    console.print(t)
    f = c["factors"]
    console.print(f"bandwidth efficiency {f['bw_eff']:.2f} of the probed {f['probe_bw_gbps']} GB/s, compute/fixed-cost scale "
                  f"{f['compute_scale']:.2f}, prefill efficiency " + ", ".join(f"{k} {v:.2f}" for k, v in f["pp_eff"].items()),
                  soft_wrap=True, highlight=False)
    console.print("saved in the profile: `fitcheck estimate --device this` and `fitcheck` now use it", soft_wrap=True)


def advise_view(console: Console, d: dict[str, Any]) -> None:
    target = f", at least {d['target_tps']:g} t/s" if d["target_tps"] else ""
    t = Table(title=f"{d['model_name']}: quantizations by quality ({d['usable_bytes'] / 1e9:.1f} GB usable, "
                    f"context {d['n_ctx']}{target})", title_justify="left")
    for c in ("quant", "bpw", "memory", "verdict", "decode t/s", "PPL +", "KLD"):
        t.add_column(c, justify="left" if c in ("quant", "verdict") else "right")
    for r in d["candidates"]:
        style = VERDICT_STYLE[r["verdict"]].replace("bold ", "")
        t.add_row(r["quant"], f"{r['bits_per_weight']:.2f}", f"{r['total_bytes'] / 1e9:.2f} GB",
                  f"[{style}]{r['verdict'].replace('_', ' ')}[/{style}]",
                  f"{r['decode_tps']:.1f}" if r["decode_tps"] else "-",
                  f"{r['ppl_delta']:.3f}" if r["ppl_delta"] is not None else "-",
                  f"{r['kld_mean']:.4f}" if r["kld_mean"] is not None else "-")
    console.print(t)
    c = d["choice"]
    if c:
        speed = f", ~{c['decode_tps']:.1f} t/s decode" if c["decode_tps"] else ""
        console.print(f"[bold green]advice[/bold green]: {c['quant']} — {c['total_bytes'] / 1e9:.2f} GB, "
                      f"headroom {c['headroom_bytes'] / 1e9:.2f} GB{speed}, KLD {c['kld_mean']}", soft_wrap=True)
    else:
        console.print("[bold red]nothing fits with headroom[/bold red]" + (" at that speed" if d["target_tps"] else "") + "; ways out:")
        for w in d["ways_out"]:
            extra = f" — {w['total_bytes'] / 1e9:.2f} GB" if "total_bytes" in w else ""
            speed = f", ~{w['decode_tps']:.1f} t/s" if w.get("decode_tps") else ""
            console.print(f"  • {w['way']}{extra}{speed}", soft_wrap=True)
    console.print(f"[dim]quality: {d['quality_source']}; memory: {d['basis']['memory']}[/dim]", soft_wrap=True)


def _when(year_month: str | None, interval: list[str] | None) -> str:
    if year_month is None:
        return "not within the horizon"
    return f"{year_month} (5-95 %: {interval[0]} to {interval[1]})" if interval else f"{year_month} (no stable interval)"


def forecast_view(console: Console, d: dict[str, Any]) -> None:
    console.print(f"[bold]{d['device_class']}[/bold] ({d['description']}), {d['model_name']} {d['quant']}, "
                  f">= {d['target_tps']:g} t/s decode, context {d['n_ctx']}"
                  + (f", devices released by {d['as_of']}" if d["as_of"] else ""), soft_wrap=True)
    t = Table(title="Trends (log-linear on release year)", title_justify="left")
    for c in ("quantity", "devices", "growth / year", "doubles every", "r²"):
        t.add_column(c, justify="left" if c == "quantity" else "right")
    for tr in d["trends"].values():
        t.add_row(f"{tr['quantity']} ({tr['unit']})", str(tr["n"]), f"{math.expm1(tr['slope_per_year']):+.0%}",
                  f"{tr['doubling_years']:.1f} y" if tr["doubling_years"] else "never",
                  f"{tr['r2']:.2f}" if tr["r2"] is not None else "-")
    console.print(t)
    first = d["first_observed"]
    console.print(f"Forecast: the class's trend runs it from [bold]{_when(d['year_month'], d['interval_months'])}[/bold] "
                  f"(memory from {_month(d['memory_year'], d['devices'])}, speed from {_month(d['speed_year'], d['devices'])})", soft_wrap=True)
    console.print("First device in the data that runs it: "
                  + (f"{first['name']} ({first['release']}, {first['ram_gb']} GB): {first['reason']}" if first else "none"),
                  soft_wrap=True)
    for c in d["claims"]:
        mark = "[green]supported[/green]" if c["supported"] else "[red]not supported[/red]"
        console.print(f"Seed claim \"{c['claim']}\": {mark}; "
                      + "; ".join(f"{k}: {v}" for k, v in c["by_platform"].items())
                      + (f"; class trend: {c['trend_year']}" if c["trend_year"] else ""), soft_wrap=True)
        for x in c["deciding"]:
            console.print(f"    {x['name']} ({x['release']}, {x['ram_gb']} GB): {x['reason']}", soft_wrap=True)
    t = Table(title=f"Devices ({len(d['devices'])})", title_justify="left")
    for c in ("device", "release", "RAM", "usable GB", "GB/s", "t/s", "runs"):
        t.add_column(c, justify="left" if c == "device" else "right")
    for p in d["devices"]:
        t.add_row(p["name"], p["release"], str(p["ram_gb"]), f"{p['usable_bytes'] / 1e9:.1f}", f"{p['bw_gbps'] or '-'}",
                  f"{p['decode_tps']:.1f}" if p["decode_tps"] else "-", "[green]yes[/green]" if p["runs"] else "no")
    console.print(t)
    for sk in d["skipped"]:
        console.print(f"[dim]skipped {sk['name']}: {sk['reason']}[/dim]", soft_wrap=True)
    console.print(f"[dim]{d['basis']['interval']}; {d['basis']['configuration']}; {d['basis']['speed']}[/dim]", soft_wrap=True)


def _month(y: float | None, devices: list[dict]) -> str:
    """A trend's crossing as a month; one before the first device is not extrapolated backwards."""
    from fitcheck.forecast import month_of

    if y is None:
        return "never"
    first = min(devices, key=lambda p: p["release_year"])
    return f"before {first['release']}" if y < first["release_year"] else month_of(y)


def scan_view(console: Console, d: dict[str, Any]) -> None:
    t = Table(title=f"Models found ({len(d['models'])}), context {d['n_ctx']}, "
                    f"{d['usable_bytes'] / 1e9:.1f} GB usable", title_justify="left")
    for c in ("model", "source", "file", "quant", "params", "needs", "verdict", "t/s"):
        t.add_column(c, overflow="fold", justify="right" if c in ("file", "params", "needs", "t/s") else "left")
    for m in d["models"]:
        style = VERDICT_STYLE.get(m["verdict"], "").replace("bold ", "") or "white"
        name = m["name"] + (f" (also {', '.join(m['also'])})" if m["also"] else "") + \
            (f" [{m['splits']} parts]" if m["splits"] > 1 else "")
        t.add_row(name, m["source"], fmt_bytes(m["file_size_bytes"]), m["quant"] or "-",
                  fmt_count(m["parameter_count"]) if m["parameter_count"] else "-", f"{m['needed_bytes'] / 1e9:.2f} GB",
                  f"[{style}]{(m['verdict'] or '-').replace('_', ' ')}[/{style}]",
                  f"{m['decode_tps']:.1f}" if m["decode_tps"] else "-")
    console.print(t)
    for p in d["problems"]:
        console.print(f"[red]unreadable[/red] {p['name']} ({p['source']}, {p['path']}): {p['error']}",
                      soft_wrap=True, markup=True, highlight=False)
    for sk in d["skipped"]:
        console.print(f"[dim]skipped {sk['name']}: {sk['reason']}[/dim]", soft_wrap=True)
    where = ", ".join(f"{x['source']} {x['path']}" for x in d["searched"] if x["exists"]) or "no known store on this machine"
    console.print(f"[dim]searched: {where}; {d['elapsed_s']:.2f} s, headers only; memory: {d['basis']['memory']}[/dim]",
                  soft_wrap=True)
