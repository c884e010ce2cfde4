"""Matplotlib figures (PNG) for `forecast --plot` and `fitcheck report`. Agg backend: no display needed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fitcheck.errors import UsageError

QUANT_COLORS = {"Q8_0": "#1f77b4", "Q6_K": "#2ca02c", "Q5_K_M": "#17becf", "Q4_K_M": "#ff7f0e", "Q4_0": "#d62728",
                "Q3_K_M": "#9467bd", "Q2_K": "#8c564b"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_y(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(fmt)
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _save(fig, path: str | os.PathLike) -> Path:
    """Write atomically: a failed save leaves no half-written PNG behind."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UsageError(f"{out}: plots are written as PNG; give a path ending in .png")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such directory for the plot")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        _plt().close(fig)
    return out


def forecast_plot(r, path: str | os.PathLike) -> Path:
    """Usable memory and decode t/s of the class's devices against release year, trends with bootstrap bands."""
    from fitcheck.forecast import TIGHT_MARGIN

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    grid = r.bands["grid"]
    need_gb = r.needed_bytes / 1e9 / (1 - TIGHT_MARGIN)
    panels = (
        (axes[0], "usable_memory", "memory", [(p.release_year, p.usable_bytes / 1e9, p) for p in r.devices],
         need_gb, f"needs {need_gb:.1f} GB (10 % margin)", "usable memory per app (GB)"),
        (axes[1], "decode", "decode", [(p.release_year, p.decode_tps, p) for p in r.devices if p.decode_tps],
         r.target_tps, f"target {r.target_tps:g} t/s", f"decode t/s, {r.model} {r.quant}"),
    )
    for ax, key, band, pts, level, level_label, ylabel in panels:
        trend = r.trends[key]
        ax.scatter([x for x, _, _ in pts], [y for _, y, _ in pts], s=18,
                   c=["#2ca02c" if p.runs else "#d62728" for _, _, p in pts], zorder=3, label="devices (green: runs)")
        ax.plot(grid, [trend.at(t) for t in grid], color="#1f77b4", label=f"trend (x2 every {trend.doubling_years:.1f} y)"
                if trend.doubling_years else "trend")
        lo, hi = r.bands[band]
        ax.fill_between(grid, lo, hi, color="#1f77b4", alpha=0.15, label="5-95 % bootstrap band")
        ax.axhline(level, color="black", ls="--", lw=1, label=level_label)
        if r.year is not None:
            ax.axvline(r.year, color="#ff7f0e", lw=1.5, label=f"forecast {r.to_dict()['year_month']}")
        if r.interval:
            ax.axvspan(r.interval[0], r.interval[1] or grid[-1], color="#ff7f0e", alpha=0.1, label="5-95 % forecast interval")
        _log_y(ax)
        ax.set_xlim(grid[0], grid[-1])
        ax.set_xlabel("release year")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{r.device_class}: when does the class run {r.model_name} {r.quant} at >= {r.target_tps:g} t/s?")
    return _save(fig, path)


def memory_bars(rows: list[dict[str, Any]], usable_bytes: int, path: str | os.PathLike) -> Path:
    """Stacked bars of the reserved memory (weights, KV cache, compute, output + overhead) per size x quant."""
    plt = _plt()
    labels = [f"{r['size'].upper()} {r['quant']}" for r in rows]
    parts = (("weights", "weights_bytes", "#1f77b4"), ("KV cache", "kv_bytes", "#ff7f0e"),
             ("compute buffer", "compute_bytes", "#2ca02c"), ("output + overhead", "other_bytes", "#7f7f7f"))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    bottom = [0.0] * len(rows)
    for label, key, color in parts:
        vals = [r["breakdown"][key] / 1e9 for r in rows]
        ax.bar(range(len(rows)), vals, bottom=bottom, color=color, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.axhline(usable_bytes / 1e9, color="black", ls="--", lw=1, label=f"usable {usable_bytes / 1e9:.1f} GB")
    ax.set_xticks(range(len(rows)), labels, rotation=70, fontsize=7)
    ax.set_ylabel("reserved memory (GB)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def speed_by_size(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Decode and prefill t/s against model size, one line per quantization."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    quants = list(dict.fromkeys(r["quant"] for r in rows))
    # quantizations of near-equal speed would hide each other: each its own marker and dash, and nudged sideways
    # by a few per cent of its size so that every one stays visible where they coincide
    markers, dashes = "os^DvPX*<>", ("-", "--", "-.", ":")
    for ax, key, title in ((axes[0], "decode_tps", "decode t/s"), (axes[1], "prefill_tps", "prefill t/s (512-token prompt)")):
        for i, q in enumerate(quants):
            nudge = 1 + 0.02 * (i - (len(quants) - 1) / 2)
            pts = [(r["params_b"] * nudge, r[key]) for r in rows if r["quant"] == q and r[key]]
            if pts:
                ax.plot(*zip(*pts), marker=markers[i % len(markers)], ls=dashes[i % len(dashes)], label=q,
                        color=QUANT_COLORS.get(q), alpha=0.85)
        ax.set_xlabel("parameters (billions)")
        ax.set_ylabel(title)
        _log_y(ax)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
        else:  # no rate known for any size (e.g. prefill without FLOPS): say so on the panel
            ax.text(0.5, 0.5, "unknown", transform=ax.transAxes, ha="center", va="center", color="grey")
    return _save(fig, path)
