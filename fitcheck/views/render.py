"""Rich tables for the CLI; each takes the same dict the command prints with --json.

Everything a person reads is in decimal units (1 GB = 1e9 bytes), fits 80
columns, and every string that came from outside (model and file names,
profile fields) is escaped before it meets rich's markup.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from fitcheck.views.text import esc


def fmt_bytes(n: float | None) -> str:
    """Decimal units, the one unit family fitcheck prints (GB = 1e9 bytes)."""
    if n is None:
        return "unknown"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            digits = 0 if unit == "B" or abs(n) >= 100 else 1 if abs(n) >= 10 else 2
            return f"{n:.{digits}f} {unit}"
        n /= 1000
    return str(n)


def fmt_gb(n: float | None, digits: int = 1) -> str:
    return "unknown" if n is None else f"{n / 1e9:.{digits}f} GB"


def fmt_tps(v: float | None, digits: int = 1) -> str:
    return "unknown" if v is None else f"~{v:.{digits}f} t/s"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "unknown"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"


def fmt_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    t = Table(title=esc(title), show_header=False, title_justify="left")
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(esc(k), "unknown" if v is None else esc(v))
    return t


def inspect_view(console: Console, d: dict[str, Any]) -> None:
    layers = d["sliding_layers"]
    swa = (
        f"{d['sliding_window']} tokens on {len(layers)}/{d['block_count']} layers"
        if d["sliding_window"]
        else "none"
    )
    from pathlib import Path

    rows = [
        ("file", Path(d["path"]).name + (f" (+{d['splits'] - 1} more parts)" if d["splits"] > 1 else "")),
        ("architecture", d["architecture"]),
        ("name", d["name"]),
        ("size label", d["size_label"]),
        ("parameters", fmt_count(d["parameter_count"])),
        ("file size", fmt_bytes(d["file_size_bytes"])),
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
        t.add_row(esc(name), str(e["count"]), fmt_count(e["elements"]), fmt_bytes(e["bytes"]), f"{100 * e['bytes'] / total:.1f} %")
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
    k = p.get("kernels")
    if isinstance(k, dict):
        if k.get("status") != "ok":
            rows.append(("llama.cpp kernels", _status(k)))
        else:
            rates = ", ".join(f"{c} {r['tg_elems_per_s'] / 1e9:.0f}/{r['pp_elems_per_s'] / 1e9:.0f}"
                              for c, r in (k.get("rates") or {}).items() if isinstance(r, dict))
            fixed = k.get("fixed_costs") or {}
            rows.append(("llama.cpp kernels", f"{rates} G weights/s decode/prefill at {k.get('threads')} threads"
                         f"{', repacked' if k.get('repack') else ''}; fixed {1e3 * (fixed.get('per_token_s') or 0):.2f} ms/token "
                         f"+ {1e3 * (fixed.get('per_layer_s') or 0):.3f} ms/layer ({k.get('elapsed_s')} s)"))
    rows.append(("disk read", _status(disk) or f"{_gbps(disk.get('read_gbps'))} (cache dropped: {disk.get('cache_drop')})"))
    rows.append(("llama.cpp", _status(rt) or f"llama-cpp-python {rt.get('llama_cpp_python')}, backends {', '.join(rt.get('backends', []))}"
                 + (", AMX" if rt.get("amx") else "")))
    console.print(kv_table(f"Device profile ({'quick' if p.get('quick') else 'full'}, {p.get('created')})", rows))


VERDICT_STYLE = {"fits": "bold green", "tight": "bold yellow", "pages": "bold magenta", "killed": "bold red",
                 "does_not_fit": "bold red"}
VERDICT_WORD = {"fits": "fits", "tight": "tight", "pages": "pages", "killed": "no", "does_not_fit": "no"}


def _device_line(dev: dict[str, Any]) -> str:
    usable = f"{fmt_gb(dev['usable_bytes'])} usable"
    ram_gb = dev.get("ram_gb")
    if isinstance(ram_gb, (int, float)) and ram_gb > 0:  # "128 GB" of RAM is 128 GiB: said, so 136 GB reads right
        usable += f" of {fmt_gb(ram_gb * 2 ** 30)} (\"{ram_gb:g} GB\" of RAM is {ram_gb:g}·2^30 bytes)"
    ram = f"; RAM: {esc(dev['ram_choice'])}" if dev.get("ram_choice") else ""
    return f"[bold]{esc(dev['label'])}[/bold]: {usable}{ram}"


def estimate_view(console: Console, d: dict[str, Any]) -> None:
    # every line wraps between words at the terminal's width (80 columns when output is not a terminal)
    m, mem, fit, b, dev = d["model"], d["memory"], d["fit"], d["basis"], d["device"]
    s = b["settings"]
    console.print(_device_line(dev), highlight=False)
    title = f"{esc(m['name'])} ({esc(m['quant'])}, {fmt_count(m['parameter_count'])} params, {m['bits_per_weight']:.2f} bpw)"
    t = Table(title=title, title_justify="left")
    t.add_column("component", no_wrap=True)
    t.add_column("reserved", justify="right", no_wrap=True)
    t.add_column("note")
    swa = f", SWA layers {mem['kv_cells_swa']} cells" if mem["kv_cells_swa"] else ""
    recipe = "; llama-quantize's default recipe (published files may differ)" if b.get("weights_recipe", "").startswith("llama") else ""
    t.add_row("weights", fmt_bytes(mem["weights_bytes"]), "mmapped, populated at load" + recipe)
    t.add_row("KV cache", fmt_bytes(mem["kv_cache_bytes"]), f"{mem['kv_cells']} cells{swa}, K {s['type_k']} / V {s['type_v']}")
    if mem.get("recurrent_state_bytes"):
        t.add_row("recurrent state", fmt_bytes(mem["recurrent_state_bytes"]), "conv + SSM state of the recurrent layers (F32, per sequence)")
    t.add_row("compute buffer", fmt_bytes(mem["compute_bytes"]), f"worst-case graph, ubatch {s['n_ubatch']}; ~{fmt_bytes(mem['compute_resident_bytes'])} touched in a run")
    t.add_row("output", fmt_bytes(mem["output_bytes"]), "logits of one sequence")
    t.add_row("runtime overhead", fmt_bytes(mem["overhead_bytes"]), f"{esc(s['runtime'])} process + vocabulary")
    rss = f"the need; RSS after a run ~{fmt_bytes(mem['resident_bytes'])}"
    if mem.get("repacked_bytes"):  # the copy and the mapped file both count in RSS; the OS can drop the file's pages
        rss += f", of it {fmt_bytes(mem['repacked_bytes'])} file pages read to repack (dropped under pressure)"
    t.add_row("[bold]total (reserved)[/bold]", f"[bold]{fmt_bytes(mem['total_bytes'])}[/bold]", rss)
    if mem["gpu_layers"]:
        t.add_row("on accelerator", fmt_bytes(mem["device_bytes"]), f"{mem['gpu_layers']} layers offloaded; host {fmt_bytes(mem['host_bytes'])}")
    console.print(t)
    style = VERDICT_STYLE[fit["verdict"]]
    room = fit["headroom_bytes"]
    margin = f"{fmt_gb(room, 2)} to spare" if room >= 0 else f"{fmt_gb(-room, 2)} short"
    word = {"pages": "does not fit in memory — pages from storage", "killed": "does not fit — killed"}.get(
        fit["verdict"], fit["verdict"])
    console.print(f"[{style}]{word}[/{style}]: needs {fmt_gb(fit['needed_bytes'], 2)} "
                  f"(reserved) of {fmt_gb(fit['usable_bytes'], 2)} usable, {margin}", highlight=False)
    if d.get("paging"):
        console.print(f"why: {d['paging']['reason']}", highlight=False, markup=False)
    if d.get("speed"):
        console.print(speed_line(d), highlight=False, markup=False)
        if d["speed"].get("at_depth"):
            console.print(depth_line(d["speed"]["at_depth"]), highlight=False, markup=False)
        if d["speed"].get("parallel"):
            par = d["speed"]["parallel"]
            console.print(f"parallel requests (each {_tokens(par['depth'])} deep): " + ", ".join(
                f"{r['n_seq']}: {fmt_rate(r['aggregate_tps'])} t/s in all, {fmt_rate(r['per_seq_tps'])} each" for r in par["rows"]),
                highlight=False, markup=False)
        if fit["verdict"] == "pages":
            console.print(f"paging: {d['paging']['storage_source']}", highlight=False, markup=False)
    elif fit["verdict"] == "killed":
        console.print("speed: none — the OS kills it (out of memory) before it runs", highlight=False)
    elif fit["verdict"] == "pages":
        console.print(f"speed: unknown — {d['paging']['storage_source']}", highlight=False, markup=False)
    else:
        console.print("speed: unknown — " + esc(dev.get("speed_note") or "no speed inputs"), highlight=False)
    rt = f"{esc(b['runtime']['id'])} defaults ({esc(b['runtime']['verification'])}): " if b.get("runtime") else ""
    console.print(f"[dim]{rt}context {s['n_ctx']}, flash attention {'on' if s['flash_attn'] else 'off'}, swa_full {s['swa_full']}, "
                  f"{'mmap' if s['use_mmap'] else 'no mmap'}; "
                  f"memory: {esc(b['memory'], 1000)}[/dim]", highlight=False)
    if "approximate" in b:  # a generic size or a fine-tune's base: said where it cannot be missed
        console.print(f"[yellow]note:[/yellow] {esc(b['alias'])}: {esc(b['approximate'])}", highlight=False)
    elif "alias" in b:
        console.print(f"[dim]{esc(b['alias'])}[/dim]", highlight=False)
    if "quant_read" in b:
        console.print(f"[yellow]note:[/yellow] {esc(b['quant_read'])}", highlight=False)
    for w in d.get("ways_out") or []:
        lo_hi = w.get("decode_tps_range")
        rng = f" ({lo_hi[0]:.2f}–{lo_hi[1]:.2f})" if lo_hi else ""
        rate = f"~{w['decode_tps']:.2f} t/s decode{rng}" if w.get("decode_tps") else "speed unknown"
        src = f" ({w['paging']['storage_source']})" if w.get("paging") else ""
        how = "it pages at" if w["verdict"] == "pages" else "it fits, at"
        console.print(f"way out: {w['how']} — {how} {rate}{src}", highlight=False, markup=False)


def models_view(console: Console, d: dict[str, Any]) -> None:
    r = d.get("resolved")
    if r:  # a query: what it reads as, and why
        console.print(f"reads as: {r['id']} ({r['name']}, {r['params_b_published']:g}B)" + (f" — {r['how']}" if r.get("how") else "")
                      if "error" not in r else f"reads as no catalog model: {r['error']}", highlight=False, markup=False)
    wide = console.width >= 110  # the name and architecture columns only where they fit beside whole ids
    cols = ["id"] + (["name", "arch"] if wide else []) + ["params (B)", "layers", "ctx", "verification"]
    t = Table(title="Model catalog", title_justify="left")
    for c in cols:
        t.add_column(c, no_wrap=c != "verification", justify="right" if c in ("params (B)", "layers", "ctx") else "left")
    for m in d["models"]:
        t.add_row(m["id"], *([m["name"], m["arch"]] if wide else []), str(m["params_b_published"]), str(m["n_layer"]),
                  str(m["n_ctx_train"]), m["verification"])
    console.print(t)
    console.print("aliases: " + ", ".join(f"{k} -> {v}" for k, v in d["aliases"].items()), soft_wrap=True)
    console.print("quantizations: " + ", ".join(d["quants"]), soft_wrap=True)


def answer_header(d: dict[str, Any]) -> str:
    dev = d["device"]
    bw = f", bandwidth {dev['bw_gbps']:.1f} GB/s" if dev.get("bw_gbps") else ""
    return _device_line(dev) + bw


def _cell(r: dict[str, Any]) -> str:
    style = VERDICT_STYLE[r["verdict"]].replace("bold ", "")
    word = VERDICT_WORD[r["verdict"]]
    speed = ""
    if r["decode_tps"] is not None:
        speed = f" {r['decode_tps']:.1f}" + (f"/{r['prefill_tps']:.0f}" if r["prefill_tps"] else "")
    return f"[{style}]{r['total_bytes'] / 1e9:.2f} {word}[/{style}]{speed}"


def answer_view(console: Console, d: dict[str, Any]) -> None:
    console.print(answer_header(d), highlight=False)  # wrapped at the terminal's width, between words
    sizes = list(dict.fromkeys(r["size"] for r in d["rows"]))
    quants = list(dict.fromkeys(r["quant"] for r in d["rows"]))
    t = Table(title=f"GB needed (context {d['settings']['n_ctx']}), verdict, decode/prefill t/s", title_justify="left")
    t.add_column("quant", no_wrap=True)
    for size in sizes:
        name = next(r["model"] for r in d["rows"] if r["size"] == size)
        t.add_column(f"{size.upper()}\n{esc(name)}", justify="right", no_wrap=True)
    by = {(r["size"], r["quant"]): r for r in d["rows"]}
    for q in quants:
        t.add_row(q, *(_cell(by[(size, q)]) for size in sizes))
    console.print(t)
    for a in d["answers"]:
        style = {"yes": "green", "slow": "yellow", "fits": "yellow", "tight": "yellow", "no": "red"}[a["verdict"]]
        console.print(f"[{style}]{esc(a['text'])}[/{style}]", highlight=False)  # wrapped between words
    console.print(f"[dim]'yes' = fits with headroom and decodes at >= {d['target_tps']:g} t/s (--target-tps). "
                  f"Prefill of a 512-token prompt. Speed: {esc(d['speed_basis'], 2000)}. "
                  f"Memory: {esc(d['device']['memory_rule'], 1000)}.[/dim]", highlight=False)


def devices_view(console: Console, devs: list, resolved: dict | None = None) -> None:
    """Names (wrapped at spaces, never inside a word); ids are in --json. The backend column only where it fits.
    `resolved`: what a query reads as (the device, the RAM used and why), said above the table."""
    if resolved:
        console.print(f"reads as: {resolved['name']}" + (f", {resolved['ram_gb']} GB" if resolved.get("ram_gb") else "")
                      + f" — {resolved['why']}" if "error" not in resolved else f"reads as no one device: {resolved['error']}",
                      highlight=False, markup=False)
    wide = console.width >= 110
    cols = ["device", "kind", "year", "RAM GB", "GB/s", "TFLOPS"] + (["backend"] if wide else [])
    t = Table(title=f"Devices ({len(devs)}): name one as you would say it", title_justify="left")
    for c in cols:
        t.add_column(c, no_wrap=c != "device", justify="right" if c in ("GB/s", "TFLOPS", "year") else "left")
    for d in devs:
        tf = d.fp16_tflops or d.fp32_tflops
        t.add_row(esc(d.name), d.kind, str(d.year or "-"), "/".join(map(str, d.ram_options_gb)) or "-",
                  f"{d.bw_gbps:g}" if d.bw_gbps else "-", f"{tf:g}" if tf else "-", *(["/".join(d.backends)] if wide else []))
    console.print(t)
    if len(devs) <= 3:  # a device asked for by name: what it runs and what its speed rests on
        for d in devs:
            runs = ", ".join(f"{b} (default)" if i == 0 else b for i, b in enumerate(d.backends))
            facts = [f"runs: {runs}"] + [f"{k}: {v}" for k, v in (("CPU", d.cpu), ("ISA", d.cpu_isa), ("NPU", d.npu)) if v]
            console.print(f"{d.name}: " + "; ".join(facts), highlight=False, markup=False, soft_wrap=True)


def fmt_rate(v: float) -> str:
    """A rate with one decimal, or two significant digits below 1 (0.0021 t/s is not 0.0)."""
    return f"{v:.1f}" if v >= 1 or v == 0 else f"{v:.2g}"


def speed_line(d: dict[str, Any]) -> str:
    """Plain text (printed with markup off): decode, prefill, TTFT and what they rest on."""
    sp, si, dev = d["speed"], d["basis"]["speed_inputs"], d["device"]
    d_lo, d_hi = sp["decode_tps_range"]
    p_lo, p_hi = sp.get("prefill_tps_range") or (0, 0)
    pre = (f"prefill ~{sp['prefill_tps']:.0f} t/s ({p_lo:.0f}–{p_hi:.0f})"
           if sp.get("prefill_tps") else "prefill unknown (no FLOPS)")
    ttft = f", first token after {fmt_seconds(sp['ttft_s'])} for {si['n_prompt']} tokens" if sp.get("ttft_s") else ""
    tf = f"{dev['peak_tflops']:.3g} TFLOPS" if dev.get("peak_tflops") else "FLOPS unknown"
    if (dev.get("peak_kind") or "").startswith("Hexagon"):  # no published rate: counted in units of the measured HTP
        tf = "HTP rated as the measured v73" if dev["peak_tflops"] == 1.0 else f"HTP {dev['peak_tflops']:.2f}x the measured v73"
    return (f"speed: decode ~{fmt_rate(sp['decode_tps'])} t/s ({fmt_rate(d_lo)}–{fmt_rate(d_hi)}), "
            f"{pre}{ttft} "
            f"({dev['backend']}, {fmt_rate(dev['bw_gbps'])} GB/s, {tf}; {_speed_source(dev, si['calibrated'])})")


def _tokens(n: int) -> str:
    """Token counts as people write contexts: 8k is 8192, 31.5k is 32256."""
    return str(n) if n < 1024 else f"{n // 1024}k" if n % 1024 == 0 else f"{n / 1024:.1f}k"


def depth_line(c: dict[str, Any]) -> str:
    """Speed over a filling context: decode (and the prompt's prefill) at each depth, and a full prompt's TTFT."""
    pts = ", ".join(f"{_tokens(p['depth'])} {fmt_rate(p['decode_tps'])}" for p in c["points"])
    pre = ", ".join(f"{_tokens(p['depth'])} {p['prefill_tps']:.0f}" for p in c["points"] if p.get("prefill_tps"))
    ttft = (f"; a {_tokens(c['full_prompt_tokens'])}-token prompt: first token after {fmt_seconds(c['full_prompt_ttft_s'])}"
            if c.get("full_prompt_ttft_s") else "")
    return (f"at depth (tokens already in the cache): decode t/s {pts}" + (f"; prefill of {c['n_prompt']} t/s {pre}" if pre else "")
            + ttft)


def _speed_source(dev: dict[str, Any], calibrated: bool) -> str:
    if calibrated:
        return "calibrated on this device"
    return "not calibrated: `fitcheck calibrate`" if dev.get("source") == "profile" else "published specs"


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
    held = d.get("held_out")  # with --lofo: each class refitted without one device family at a time
    c = Table(title="By backend class", title_justify="left")
    for col in ("class / metric", "MAPE", "rows") + (("held out", "rows ") if held is not None else ()):
        c.add_column(col)
    for k, v in d.get("by_class", {}).items():
        b, metric = k.split("/")
        h = (held or {}).get(b, {}).get(metric)
        extra = (f"{h['mape']:.1%}" if h else "-", str(h["n"]) if h else "-") if held is not None else ()
        c.add_row(k, f"{v['mape']:.1%}", str(v["n"]), *extra)
    console.print(c)
    if d.get("fall_by_class"):  # runs at a filled cache: the fall from the same sweep's depth-0 run
        f = Table(title="At depth: error of the fall from depth 0, by backend class", title_justify="left")
        for col in ("class / metric", "MAPE", "rows"):
            f.add_column(col)
        for k, v in d["fall_by_class"].items():
            f.add_row(k, f"{v['mape']:.1%}", str(v["n"]))
        console.print(f)
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
    if f.get("model") == "llama.cpp kernel model":
        console.print(f"llama.cpp kernel model for this device: bandwidth efficiency {f['bw_eff']:.2f} of the probed "
                      f"{f['probe_bw_gbps']:.1f} GB/s, decode rate x{f['tg_scale']:.2f} and prefill rate x{f['pp_scale']:.2f} "
                      f"of the kernel probe's", soft_wrap=True, highlight=False)
        res = ", ".join(f"{esc(r['run'])} {r['metric']} {r['error']:+.1%}" for r in f["residuals"])
        console.print(f"reproduces its own runs: {res} (rms {f['rms_log_error']:.1%})", soft_wrap=True, highlight=False)
        if f.get("leave_one_out"):
            loo = ", ".join(f"{esc(r['run'])} {r['metric']} {r['error']:+.1%}" for r in f["leave_one_out"])
            console.print(f"each run predicted from the others (leave one out): {loo}", soft_wrap=True, highlight=False)
    else:
        console.print(f"bandwidth efficiency {f['bw_eff']:.2f} of the probed {f['probe_bw_gbps']} GB/s, compute/fixed-cost "
                      f"scale {f['compute_scale']:.2f}, prefill efficiency "
                      + ", ".join(f"{k} {v:.2f}" for k, v in f["pp_eff"].items()), soft_wrap=True, highlight=False)
    console.print("saved in the profile: `fitcheck estimate --device this` and `fitcheck` now use it", soft_wrap=True)


def check_view(console: Console, d: dict[str, Any]) -> None:
    t = Table(title=f"{esc(d['model'])}: predicted vs measured ({d['threads']} threads, pp{d['n_prompt']}, tg{d['n_gen']})",
              title_justify="left")
    for c in ("metric", "predicted", "measured", "error"):
        t.add_column(c, justify="left" if c == "metric" else "right", no_wrap=True)
    for r in d["rows"]:
        meas = f"{r['measured']:.2f}" + (f" ± {r['measured_sd']:.2f}" if r["measured_sd"] else "")
        t.add_row(r["metric"], f"{r['predicted']:.2f}" if r["predicted"] else "unknown", meas,
                  f"{r['error']:+.1%}" if r["error"] is not None else "-")
    console.print(t)
    console.print(f"[dim]{esc(d['parameters'])}[/dim]", soft_wrap=True, highlight=False)


def advise_view(console: Console, d: dict[str, Any]) -> None:
    target = f", at least {d['target_tps']:g} t/s" if d["target_tps"] else ""
    console.print(_device_line(d["device"]), soft_wrap=True, highlight=False)
    t = Table(title=f"{esc(d['model_name'])}: quantizations by quality (context {d['n_ctx']}{target})", title_justify="left")
    for c in ("quant", "bpw", "GB", "verdict", "decode t/s", "PPL +", "KLD"):
        t.add_column(c, justify="left" if c in ("quant", "verdict") else "right", no_wrap=True)
    for r in d["candidates"]:
        style = VERDICT_STYLE[r["verdict"]].replace("bold ", "")
        t.add_row(r["quant"], f"{r['bits_per_weight']:.2f}", f"{r['total_bytes'] / 1e9:.2f}",
                  f"[{style}]{r['verdict'].replace('_', ' ')}[/{style}]",
                  f"{r['decode_tps']:.1f}" if r["decode_tps"] else ("-" if r["verdict"] in ("killed", "does_not_fit") else "unknown"),
                  f"{r['ppl_delta']:.3f}" if r["ppl_delta"] is not None else "-",
                  f"{r['kld_mean']:.4f}" if r["kld_mean"] is not None else "-")
    console.print(t)
    c = d["choice"]
    if c:
        speed = f", ~{c['decode_tps']:.1f} t/s decode" if c["decode_tps"] else ""
        console.print(f"[bold green]advice[/bold green]: {c['quant']} — {c['total_bytes'] / 1e9:.2f} GB, "
                      f"{c['headroom_bytes'] / 1e9:.2f} GB to spare{speed}, KLD {c['kld_mean']}", soft_wrap=True, highlight=False)
    else:
        console.print("[bold red]nothing fits with headroom[/bold red]" + (" at that speed" if d["target_tps"] else "") + "; ways out:")
        for w in d["ways_out"]:
            extra = f" — {w['total_bytes'] / 1e9:.2f} GB" if "total_bytes" in w else ""
            speed = f", ~{w['decode_tps']:.1f} t/s" if w.get("decode_tps") else ""
            console.print(f"  • {esc(w['way'])}{extra}{speed}", soft_wrap=True, highlight=False)
    console.print(f"[dim]quality: {d['quality_source']}; memory: {esc(d['device']['memory_rule'])}[/dim]", soft_wrap=True,
                  highlight=False)


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
    for c in ("device", "release", "RAM", "usable GB", "GB/s", "t/s*", "runs"):
        t.add_column(c, justify="left" if c == "device" else "right", no_wrap=c != "device")
    for p in d["devices"]:
        t.add_row(p["name"], p["release"], str(p["ram_gb"]), f"{p['usable_bytes'] / 1e9:.1f}", f"{p['bw_gbps'] or '-'}",
                  f"{p['decode_tps']:.1f}" if p["decode_tps"] else "unknown",
                  "[green]yes[/green]" if p["runs"] else ("unknown" if p["decode_tps"] is None and p["verdict"] == "fits" else "no"))
    console.print(t)
    console.print("[dim]* the speed model's decode rate, shown for the trend even where the model does not fit[/dim]")
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
    wide = console.width >= 110
    usable = f", {fmt_gb(d['usable_bytes'])} usable" if d["usable_bytes"] else ""
    t = Table(title=f"Models found ({len(d['models'])}), context {d['n_ctx']}{usable}", title_justify="left")
    cols = ["model"] + (["source"] if wide else []) + ["quant", "params", "GB", "verdict", "t/s"]
    for c in cols:
        t.add_column(c, overflow="fold" if c == "model" else "ellipsis", no_wrap=c != "model",
                     justify="right" if c in ("params", "GB", "t/s") else "left")
    for m in d["models"]:
        style = VERDICT_STYLE.get(m["verdict"], "").replace("bold ", "") or "white"
        name = esc(m["name"]) + (f" (also {esc(', '.join(m['also']))})" if m["also"] else "") + \
            (f" ({m['splits']} parts)" if m["splits"] > 1 else "")
        t.add_row(name, *([m["source"]] if wide else []), esc(m["quant"] or "-"),
                  fmt_count(m["parameter_count"]) if m["parameter_count"] else "-", f"{m['needed_bytes'] / 1e9:.2f}",
                  f"[{style}]{(m['verdict'] or 'unknown').replace('_', ' ')}[/{style}]",
                  f"{m['decode_tps']:.1f}" if m["decode_tps"] else ("-" if m["verdict"] in ("killed", "does_not_fit") else "unknown"))
    console.print(t)
    for p in d["problems"]:
        console.print(f"[red]unreadable[/red] {esc(p['name'])} ({p['source']}): {esc(p['error'])}",
                      soft_wrap=True, highlight=False)
    for sk in d["skipped"]:
        console.print(f"[dim]skipped {esc(sk['name'])}: {esc(sk['reason'])}[/dim]", soft_wrap=True, highlight=False)
    where = ", ".join(dict.fromkeys(x["source"] for x in d["searched"] if x["exists"])) or "no known store on this machine"
    dev = d.get("device") or {}
    console.print(f"[dim]searched: {esc(where)} (--json lists the paths); {d['elapsed_s']:.2f} s, headers only; "
                  f"memory: {esc(dev.get('memory_rule', 'unknown'))}[/dim]", soft_wrap=True, highlight=False)


def split_view(console: Console, d: dict[str, Any]) -> None:
    """A model split over devices: each device's share, memory and verdict, the speed with the links, the command."""
    m, sp = d["model"], d["speed"]
    console.print(f"{esc(m['name'])} ({esc(m['quant'] or '')}, {fmt_count(m['parameter_count'])} params) over "
                  f"{len(d['memory'])} devices (GB = 1e9 bytes)", soft_wrap=True, highlight=False)
    t = Table(box=None, pad_edge=False)
    for col, just in (("device", "left"), ("layers", "right"), ("needs", "right"), ("usable", "right"),
                      ("verdict", "left"), ("per token", "right")):
        t.add_column(col, justify=just, no_wrap=col != "device", overflow="fold")
    by_name = {u["name"]: u for u in (sp["units"] if sp else [])}
    for mem, layers in zip(d["memory"], d["split"]["layers"]):
        u = by_name.get(mem["device"])
        style = VERDICT_STYLE.get(mem["verdict"], "")
        t.add_row(esc(mem["device"]), str(layers), fmt_gb(mem["total_bytes"], 2), fmt_gb(mem["usable_bytes"], 2),
                  f"[{style}]{mem['verdict']}[/{style}]" if style else mem["verdict"],
                  f"{u['decode_s'] * 1e3:.1f} ms" if u else "-")
    console.print(t)
    for mem in d["memory"]:
        console.print(f"  {esc(mem['device'])}: weights {fmt_gb(mem['weights_bytes'], 2)}, KV {fmt_gb(mem['kv_bytes'], 2)}, "
                      f"compute and other {fmt_gb(mem['compute_bytes'] + mem['other_bytes'], 2)}"
                      + (f"; {esc(mem['note'])}" if mem["note"] else ""), soft_wrap=True, highlight=False)
    for dev in d["split"]["devices"]:
        if dev["link"] and dev["link"]["gbit_s"]:
            console.print(f"link to {esc(dev['name'])}: {esc(dev['link']['name'])}, {dev['link']['gbit_s']:g} Gbit/s, "
                          f"{dev['link']['rtt_ms']:g} ms round trip", soft_wrap=True, highlight=False)
    word = {"does_not_fit": f"does not fit: {', '.join(d['over'])} over its memory"}.get(d["verdict"], d["verdict"])
    console.print(f"[{VERDICT_STYLE.get(d['verdict'], '')}]{esc(word)}[/]", soft_wrap=True, highlight=False)
    if sp:
        pp = f", prefill {fmt_tps(sp['prefill_tps'])}" if sp["prefill_tps"] else ""
        console.print(f"speed: decode {fmt_tps(sp['decode_tps'])}{pp}; the links take "
                      f"{sp['link_decode_s'] * 1e3:.2f} ms of each token ({sp['crossings']} crossings, "
                      f"{sp['round_trips']} waiting for a reply over the network)", soft_wrap=True, highlight=False,
                      markup=False)
    console.print(f"llama.cpp: {d['command']}", soft_wrap=True, highlight=False, markup=False)
    for n in d["notes"]:
        console.print(f"note: {n}", soft_wrap=True, highlight=False, markup=False)


def advise_split_view(console: Console, d: dict[str, Any]) -> None:
    """advise over several devices: the fewest that do, with the quantization, speed and command line."""
    target = f" at >= {d['target_tps']:g} t/s" if d["target_tps"] else ""
    for st in d["sets"]:
        who = " + ".join(st["devices"])
        if st["best"]:
            b = st["best"]
            console.print(f"{esc(who)}: {b['quant']} fits{target}, decode {fmt_tps(b['decode_tps'])}"
                          + (f", prefill {fmt_tps(b['prefill_tps'])}" if b["prefill_tps"] else ""), soft_wrap=True,
                          highlight=False)
        else:
            why = (f"{', '.join(st['fitting'])} fit, none fast enough" if st["fitting"]
                   else "no quantization fits with headroom")
            console.print(f"{esc(who)}: {why}", soft_wrap=True, highlight=False)
    c = d["choice"]
    if c:
        console.print(f"[bold]answer[/bold]: {esc(d['model_name'])} at {c['quant']} on {esc(' + '.join(c['devices']))}"
                      f"{target}", soft_wrap=True, highlight=False)
        console.print(f"llama.cpp: {c['command']}", soft_wrap=True, highlight=False, markup=False)
    else:
        console.print(f"[bold red]no quantization of {esc(d['model_name'])} fits these devices{target}[/bold red]",
                      soft_wrap=True, highlight=False)
    for n in d["notes"]:
        console.print(f"note: {n}", soft_wrap=True, highlight=False, markup=False)


def serve_view(console: Console, d: dict[str, Any]) -> None:
    """Concurrent users: memory verdict and decode per user for 1, 2, 4 ... users, and the answer."""
    console.print(_device_line(d["device"]), soft_wrap=True, highlight=False)
    t = Table(title=f"{esc(d['model']['name'])} ({esc(d['model']['quant'])}), {_tokens(d['ctx_per_user'])} context "
                    "per user", title_justify="left")
    for col in ("users", "memory", "t/s each", "t/s in all", ""):
        t.add_column(col, justify="right" if col != "memory" else "left")
    for r in d["rows"]:
        t.add_row(str(r["users"]), f"{r['verdict']} ({fmt_bytes(r['total_bytes'])})", fmt_rate(r["per_user_tps"]),
                  fmt_rate(r["aggregate_tps"]), "ok" if r["meets"] else "")
    console.print(t)
    console.print(f"[dim]each user {_tokens(d['depth_assumed'])} tokens into the context, decode steps batched over "
                  "all users[/dim]", soft_wrap=True, highlight=False)
    n = d["max_users"]
    console.print((f"{n} user{'s' if n != 1 else ''} at once get at least {d['min_tps']:g} t/s each" if n else
                   f"not even one user gets {d['min_tps']:g} t/s with this context here"), highlight=False)
