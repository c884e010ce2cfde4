"""Rich tables for the CLI; each takes the same dict the command prints with --json."""

from __future__ import annotations

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
