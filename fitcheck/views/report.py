"""`fitcheck report`: one device's answer as a self-contained HTML page and a Markdown file, with plots.

The HTML embeds its PNGs (data URIs) so it can be mailed or archived alone;
the Markdown links the same PNGs in `<name>_files/`. Everything is rendered
into a temporary folder beside the output first and moved into place at the
end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fitcheck.errors import UsageError
from fitcheck.estimator.evaluate import Target

FORECAST_SIZE, FORECAST_QUANT, FORECAST_TPS = "7b", "Q4_K_M", 5.0
# device family -> the forecast class it belongs to (this device, a PC, has none: the seed's phone question is shown)
CLASS_OF_KIND = {"phone": "phone-flagship", "sbc": "sbc", "board": "sbc"}


def class_for(dev) -> str:
    if dev is None:
        return "phone-flagship"
    by_family = {"NVIDIA GPU": "nvidia-consumer-gpu", "NVIDIA DC": "nvidia-datacenter-gpu", "Jetson": "sbc"}
    if dev.family in by_family:
        return by_family[dev.family]
    if dev.family == "Apple M":  # a Mac or iPad is classed by its chip row ("Apple M4 Max (40-core GPU)")
        import device_db

        chip = device_db.devices().get(dev.chip, dev)
        tier = re.search(r"M\d+ (Pro|Max|Ultra)", chip.name)
        return f"apple-m-{tier.group(1).lower()}" if tier else "apple-m-base"
    return CLASS_OF_KIND.get(dev.kind, "phone-flagship")


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None
    image: str | None = None  # file name in the images folder
    caption: str = ""


def _gb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:.2f}"


def _tps(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _device_section(d: dict, prof: dict | None) -> Section:
    rows: list[list[str]] = []
    if prof is not None:
        mem, bw, comp, disk = (prof.get(k, {}) for k in ("memory", "bandwidth", "compute", "disk"))
        rows += [["CPU", str(prof.get("cpu", {}).get("model")), "probe (py-cpuinfo, /proc/cpuinfo)"],
                 ["RAM total / available", f"{_gb(mem.get('total_bytes'))} / {_gb(mem.get('available_bytes'))} GB", "probe (psutil)"],
                 ["memory limit", f"{_gb(mem.get('limit_bytes'))} GB ({mem.get('limit_source')})", "probe (cgroup)"],
                 ["read bandwidth", f"{bw.get('read_gbps')} GB/s ({bw.get('method')})", "probe"],
                 ["fp32 GEMM", f"{comp.get('fp32_gflops')} GFLOP/s", "probe (numpy BLAS)"],
                 ["disk read", f"{disk.get('read_gbps')} GB/s", "probe"],
                 ["profile", str(prof.get("created")), "fitcheck probe"]]
        cal = prof.get("calibration")
        if isinstance(cal, dict) and isinstance(cal.get("params"), dict):
            p = cal["params"]
            rows.append(["calibration", f"bw_eff {p.get('bw_eff'):.3f}, t_layer {p.get('t_layer_s', 0) * 1e6:.1f} µs "
                         f"({cal.get('source')}, {cal.get('created')})", "fitcheck calibrate (real llama.cpp runs)"])
        else:
            rows.append(["calibration", "none: speeds use class parameters (run `fitcheck calibrate`)", "-"])
    else:
        v = d["device"]
        rows += [["device", f"{v['name']} ({v['id']})", v["device_source"]],
                 ["RAM", f"{v['ram_gb']} GB ({v['ram_choice']})", v["device_verification"]],
                 ["usable memory", f"{_gb(d['usable_bytes'])} GB", v["memory_rule"]],
                 ["bandwidth", f"{v['bw_gbps']} GB/s", v["device_source"]],
                 ["GPU fp16 / fp32", f"{v['fp16_tflops']} / {v['fp32_tflops']} TFLOPS", v["device_source"]],
                 ["release", str(v["release"]), v["device_source"]],
                 ["calibration", "none (a database device: published specs only)", "-"]]
    return Section("Device", [f"Usable memory for one app: {_gb(d['usable_bytes'])} GB. Speeds: {d['speed_basis']}."],
                   (["fact", "value", "source"], rows))


def _table_section(d: dict) -> Section:
    rows = [[r["size"].upper(), r["model"], r["quant"], f"{r['bits_per_weight']:.2f}", _gb(r["total_bytes"]),
             _gb(r["resident_bytes"]), r["verdict"].replace("_", " "), _tps(r["decode_tps"]), _tps(r["prefill_tps"], 0)]
            for r in d["rows"]]
    return Section("Size x quantization", [
        f"Context {d['settings']['n_ctx']} tokens, {d['settings']['runtime']} defaults; the verdict uses the "
        f"{d['verdict_uses']}; resident is the RSS expected after a 512-token prompt."],
        (["size", "model", "quant", "bits/weight", "reserved GB", "resident GB", "verdict", "decode t/s", "prefill t/s"], rows))


def _forecast_section(r, image: str) -> Section:
    fd = r.to_dict()
    paras = [f"Class {r.device_class} ({r.description}): {r.model_name} {r.quant} at >= {r.target_tps:g} t/s decode "
             f"first in {fd['year_month']}"
             + (f" (5-95 % bootstrap interval {fd['interval_months'][0]} to {fd['interval_months'][1]})" if fd["interval_months"] else "")
             + ". " + "; ".join(f"{t.quantity} doubles every {t.doubling_years:.1f} y" for t in r.trends.values() if t.doubling_years)]
    for c in r.claims:
        paras.append(f"Seed claim \"{c.claim}\": {'supported' if c.supported else 'not supported'} — "
                     + "; ".join(f"{k}: {v}" for k, v in c.by_platform.items()))
    return Section("Forecast", paras, image=image, caption=r.basis["interval"])


def _sources_section(d: dict, r, prof: dict | None) -> Section:
    import device_db

    from fitcheck.advise import quality_table
    from fitcheck.device.device_speed import fitted_params
    from fitcheck.model.catalog import resolve

    rows = []
    if d["device"].get("source") == "database":
        rows.append(["device facts", d["device"]["name"], d["device"]["device_source"], d["device"]["device_verification"]])
        rows.append(["usable memory rule", d["device"]["name"], d["device"]["memory_rule"], "see device_db/os_memory.csv"])
    for size in dict.fromkeys(x["size"] for x in d["rows"]):
        e, _ = resolve(size)
        rows.append(["model config", e.name, e.source, e.verification])
    sp = fitted_params()
    rows.append(["speed parameters", ", ".join(sp["backends"]), "device_db/speed_params.json (fitted on published_benchmarks_dev.csv)", "fitted"])
    q = next(iter(quality_table().values()), {})
    rows.append(["quantization quality", "Llama-3-8B PPL/KLD deltas", q.get("source", ""), "published"])
    for p in r.devices:
        rows.append(["forecast device", p.name, p.source, p.verification])
    rules = {rule.os: rule for rule in device_db.os_rules()}
    for os_name in sorted({p.os for p in r.devices} & set(rules)):
        rows.append(["OS memory rule", os_name, rules[os_name].source, rules[os_name].tag])
    if prof is not None:
        rows.append(["this device", "probe", f"fitcheck probe {prof.get('created')}", "measured"])
    return Section("Sources", ["Every device fact used above, with its source and verification level as kept in device_db."],
                   (["what", "item", "source", "verification"], rows))


# what can start markup wherever it stands; the rest only where it would: "_" at a word's edge (GFM leaves
# "Q6_K" alone), "~" when a pair could strike through, "#"/"+" opening the text, a scheme's ":" ("https:", "javascript:")
_MD_SPECIAL = re.compile(r"([\\`*{}\[\]()!|<>]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|^[#+-]|:(?=[A-Za-z/]))")


def md(text: Any) -> str:
    """Text for Markdown: no HTML, no links or emphasis from outside strings, one line per cell; plain text such as
    Q6_K or ~5.2 stays as written."""
    from fitcheck.views.text import clean

    out = _MD_SPECIAL.sub(r"\\\1", clean(text, 2000)).replace("&", "&amp;")
    return out.replace("~", "\\~") if out.count("~") > 1 else out


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(title: str, sections: list[Section], images_dir: str) -> str:
    out = [f"# {md(title)}", ""]
    for s in sections:
        out += [f"## {md(s.title)}", ""] + [md(p) + "\n" for p in s.paragraphs]
        if s.image:
            out += [f"![{md(s.title)}]({images_dir}/{s.image})", ""]
            if s.caption:
                out += [f"*{md(s.caption)}*", ""]
        if s.table:
            out += [_md_table(*s.table), ""]
    return "\n".join(out)


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f0f0f0}img{max-width:100%}.fits{color:#1a7f37}.tight{color:#9a6700}.does-not-fit{color:#cf222e}
figcaption{font-size:12px;color:#666}"""


def to_html(title: str, sections: list[Section], image_bytes: dict[str, bytes]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>"]
    for s in sections:
        parts.append(f"<section><h2>{e(s.title)}</h2>")
        parts += [f"<p>{e(p)}</p>" for p in s.paragraphs]
        if s.image:
            data = base64.b64encode(image_bytes[s.image]).decode()
            parts.append(f"<figure><img alt=\"{e(s.title)}\" src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{e(s.caption)}</figcaption></figure>")
        if s.table:
            head, rows = s.table
            parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>")
            for r in rows:
                parts.append("<tr>" + "".join(
                    f"<td class=\"{e(str(c).replace(' ', '-'))}\">{e(str(c))}</td>" if c in ("fits", "tight", "does not fit")
                    else f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</tbody></table>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _replace_dir(src: Path, dst: Path, trash_in: Path) -> None:
    """Put folder src at dst. Another report run may be doing the same: an existing dst is moved aside
    (atomically, into our temp folder) and the rename retried, so neither run fails or mixes files."""
    for attempt in range(20):
        try:
            os.replace(src, dst)
            return
        except OSError:
            if attempt == 19 or not dst.exists():
                raise
            try:
                os.replace(dst, trash_in / f"old-{attempt}")
            except OSError:
                pass  # the other run moved it first


def default_out(device: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "this"
    return Path("reports") / f"fitcheck-{slug}.html"


def report_path(out: str | None, device: str) -> Path:
    """Where the report goes, checked before anything is measured: an .html path in a folder that exists."""
    html_path = Path(out) if out else default_out(device)
    if html_path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{html_path}: the report is HTML; give a path ending in .html (the .md is written beside it)")
    if out and not html_path.parent.is_dir():  # a folder the user named must exist; the default reports/ is made later
        raise UsageError(f"{html_path.parent}: no such directory for the report")
    return html_path


def write_report(target: Target, device: str = "this", out: str | os.PathLike | None = None,
                 device_class: str | None = None, profile: dict | None = None) -> dict[str, Any]:
    """Answer, plots and forecast for a resolved device, written as HTML (+ .md and PNGs). Returns the paths written.

    `device` is the name the user gave (for the default file name); `profile` is this machine's, for its facts.
    """
    import device_db

    from fitcheck.answer import answer
    from fitcheck.forecast import forecast
    from fitcheck.views import plots

    html_path = report_path(out, device)
    from_db = target.basis.get("source") == "database"
    dev = device_db.devices()[target.basis["id"]] if from_db else None
    if not from_db and profile is None:
        raise UsageError("a report on 'this' device needs its profile (run `fitcheck probe`)")
    d = answer(target)
    cls = device_class or class_for(dev)
    fc = forecast(cls, FORECAST_SIZE, FORECAST_QUANT, FORECAST_TPS)
    title = f"fitcheck report: {target.label if dev else 'this device'}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    images_dir = f"{html_path.stem}_files"
    parent = html_path.parent
    parent.mkdir(parents=True, exist_ok=True)  # only now: bad input above must leave nothing behind
    tmp = Path(tempfile.mkdtemp(prefix=".fitcheck-report-", dir=parent))
    try:
        (tmp / images_dir).mkdir()
        plots.memory_bars(d["rows"], d["usable_bytes"], tmp / images_dir / "memory.png")
        speed_rows = [r for r in d["rows"] if r["decode_tps"]]
        if speed_rows:
            plots.speed_by_size(d["rows"], tmp / images_dir / "speed.png")
        plots.forecast_plot(fc, tmp / images_dir / "forecast.png")
        sections = [Section("Summary", [f"Generated {stamp} by fitcheck."] + [a["text"] for a in d["answers"]]),
                    _device_section(d, None if from_db else profile), _table_section(d),
                    Section("Memory breakdown", ["Reserved memory per size and quantization (stacked), against usable memory."],
                            image="memory.png", caption="weights, KV cache (full context), compute buffer, output + runtime overhead")]
        if speed_rows:
            sections.append(Section("Speed by size", ["Decode and prefill tokens/s by model size, one line per quantization."],
                                    image="speed.png", caption=d["speed_basis"]))
        sections += [_forecast_section(fc, "forecast.png"), _sources_section(d, fc, profile)]
        images = {p.name: p.read_bytes() for p in (tmp / images_dir).iterdir()}
        (tmp / html_path.name).write_text(to_html(title, sections, images))
        md_name = html_path.with_suffix(".md").name
        (tmp / md_name).write_text(to_markdown(title, sections, images_dir))
        final_images = parent / images_dir
        _replace_dir(tmp / images_dir, final_images, tmp)
        os.replace(tmp / md_name, parent / md_name)
        os.replace(tmp / html_path.name, html_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"html": str(html_path), "markdown": str(parent / md_name), "images": sorted(str(final_images / n) for n in images),
            "device": target.label, "forecast_class": cls, "answers": [a["text"] for a in d["answers"]]}
