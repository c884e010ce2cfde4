"""A model over several devices: `--device "A + B"`, `rpc:` devices, `--host`, `--link` and llama.cpp's split options
resolved into units (fitcheck.estimator.placement) and answered: memory and a verdict on each, speed with the links
in it, and the llama.cpp command line that makes this split."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from fitcheck.errors import FitcheckError, UsageError
from fitcheck.estimator.evaluate import DEFAULT_PROMPT, Target
from fitcheck.estimator.placement import Link, SplitOptions, Unit, memory, place, speed
from fitcheck.estimator.settings import RuntimeSettings

RPC_PORT = 50052  # rpc-server's default port
# the PCIe link a discrete GPU sits on, by generation (device_db/links.csv)
_PCIE = ((r"rtx\s*50|rtx pro 6000 blackwell|b200|h200|h100 pcie", "pcie5x16"), (r"rtx\s*[34]0|rx\s*[67]\d{3}|a100|l40|a6000|arc", "pcie4x16"))


def parse_link(text: str | None) -> Link:
    """--link: a name from device_db/links.csv (1gbe, 10gbe, tb4, wifi6, loopback ...) or GBIT/MS (rate in Gbit/s,
    round trip in ms)."""
    import device_db

    table = device_db.links()
    key = (text or "1gbe").strip().lower()
    if key == "calibrated":
        return calibrated_link()
    if key in table:
        f = table[key]
        return Link(f.name, f.gbit_s, f.rtt_ms / 1e3, f.kind, f"{f.source} ({f.verification})")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", key)
    if m and 0 < float(m.group(1)) <= 10_000 and float(m.group(2)) <= 10_000:
        return Link(f"{m.group(1)} Gbit/s, {m.group(2)} ms", float(m.group(1)), float(m.group(2)) / 1e3, "network",
                    "--link as given")
    raise UsageError(f"--link {text!r} is not a link: use one of {', '.join(k for k, v in table.items() if v.kind == 'network')}"
                     " or GBIT/MS (e.g. 0.3/5: 300 Mbit/s with a 5 ms round trip)")


def calibrated_link() -> Link:
    """The link `fitcheck calibrate --rpc` fitted and stored in this machine's profile."""
    from fitcheck.device import profile

    try:
        sec = profile.load().get("rpc")
    except FitcheckError:
        sec = None
    link = sec.get("link") if isinstance(sec, dict) else None
    ok = lambda v, hi: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= hi  # noqa: E731
    if not (isinstance(link, dict) and ok(link.get("gbit_s"), 1e4) and link["gbit_s"] > 0 and ok(link.get("rtt_ms"), 1e4)):
        raise UsageError("--link calibrated: no RPC link in this machine's profile; run `fitcheck calibrate --rpc HOST:PORT`")
    return Link(f"calibrated ({sec.get('created', '?')})", float(link["gbit_s"]), float(link["rtt_ms"]) / 1e3, "network",
                str(link.get("source", "fitcheck calibrate --rpc")))


def pcie_link(name: str) -> Link:
    import device_db

    key = next((k for pat, k in _PCIE if re.search(pat, name, re.I)), "pcie3x16")
    f = device_db.links()[key]
    return Link(f.name, f.gbit_s, f.rtt_ms / 1e3, f.kind, f"{f.source} ({f.verification})")


_COUNT = re.compile(r"^(?:(\d{1,2})\s*[x×*个張张块塊台]\s*|(dual|two|twin)\s+|(quad|four)\s+|(single|one)\s+)(\S.*)$",
                    re.IGNORECASE)
_BARE = re.compile(r"^(\d{1,2})\s+(?=[^\W\d])(.*)$")  # "2 A10", "8 Tesla V100 32 GB": a count only before a GPU
MAX_COUNT = 16


def _bare_count(part: str) -> tuple[int, str] | None:
    """"2 H100s": two H100 when the words after the number are a GPU and the whole is no device ("14 Pro" is)."""
    from fitcheck.device.names import known, resolve

    m = _BARE.match(part)
    if not m or known(part):
        return None
    try:
        kind = resolve(m.group(2)).device.kind
    except FitcheckError:
        return None
    return (int(m.group(1)), m.group(2)) if kind == "gpu" else None


def _counted(part: str) -> list[str]:
    """"2x RTX 3090", "dual 3090", "8*A6000", "4个80G A100", "2 H100s": that many of the device, as people write a
    machine with several."""
    m = _COUNT.match(part)
    if m:
        n = int(m.group(1)) if m.group(1) else 2 if m.group(2) else 4 if m.group(3) else 1
        rest = m.group(5)
    elif (bare := _bare_count(part)) is not None:
        n, rest = bare
    else:
        return [part]
    if not 1 <= n <= MAX_COUNT:
        raise UsageError(f"{part!r}: at most {MAX_COUNT} devices of one kind, got {n}")
    return [rest.strip()] * n


def split_devices(text: str) -> list[tuple[str, bool]]:
    """'RTX 4090 + rpc:Mac mini M4' -> [('RTX 4090', False), ('Mac mini M4', True)]. A '+' inside a name
    ("Ryzen AI Max+ 395") is not a separator: separators have spaces around them. "2x RTX 3090" is two of them."""
    parts = [q for p in re.split(r"\s\+\s", text) for q in _counted(p.strip())]
    out = []
    for p in parts:
        if not p:
            raise UsageError(f"--device {text!r} has an empty part")
        rpc = p.lower().startswith("rpc:")
        out.append((p[4:].strip() if rpc else p, rpc))
    return out


def names_several(device: str, host: str | None) -> bool:
    """Several devices named, a remote one, or a host apart from the device: a split."""
    return len(split_devices(device)) > 1 or device.strip().lower().startswith("rpc:") or host is not None


def wants_split(device: str, host: str | None, opts: SplitOptions, gpu_layers_given: bool, rpc: str | None = None) -> bool:
    return (names_several(device, host) or opts != SplitOptions(n_gpu_layers=opts.n_gpu_layers) or gpu_layers_given
            or bool(rpc))


def _unit(name: str, role: str, t: Target, link: Link | None, pool: str = "") -> Unit:
    backend = t.speed.backend if t.speed else ""
    return Unit(name, role, t.speed, t.params, t.usable_bytes, link, pool, offload_op=backend in ("cuda", "vulkan", "rocm"))


def units_for(device: str, host: str | None, link: str | None, resolve, live=()) -> tuple[tuple[Unit, ...], list[str]]:
    """The host first, then each device, then the `live` rpc-servers (fitcheck.calibration.rpc.RpcServer, probed).
    `resolve(name, backend=None)` gives a Target (fitcheck.device.resolve)."""
    parts = split_devices(device)
    notes: list[str] = []
    seen: set[str] = set()
    for name, rpc in parts:
        if not rpc and name.lower() in seen and name.lower() == "this":
            raise UsageError("--device names this machine twice")
        seen.add(name.lower())
    first, first_rpc = parts[0]
    units: list[Unit] = []
    rest = parts
    if host is not None:
        h = resolve(host, backend="cpu")
        units.append(_unit(f"host ({h.label})", "host", h, None))
    elif not first_rpc and _whole_machine(resolve(first)):
        # the first device runs llama.cpp: its CPU is the host, its GPU (if any) a device in the same memory
        t = resolve(first)
        if t.speed is not None and t.speed.backend != "cpu":
            h = resolve(first, backend="cpu")
            units.append(_unit(f"{t.label} CPU", "host", h, None, pool=t.label))
            units.append(_unit(f"{t.label} {t.speed.backend.upper()}", "gpu", t, Link("unified memory", 0.0, 0.0, "unified"),
                               pool=t.label))
        else:
            units.append(_unit(t.label, "host", t, None))
        rest = parts[1:]
    else:
        try:
            h = resolve("this")
        except FitcheckError as e:
            raise UsageError(f"name the machine that runs llama.cpp with --host (this machine: {e})") from None
        units.append(_unit(f"host ({h.label})", "host", h, None))
        notes.append("the host is this machine (its probe); name another with --host")
    net = parse_link(link)
    for i, (name, rpc) in enumerate(rest):
        t = resolve(name)
        if rpc:  # an RPC server serves plain buffers: its CPU backend runs without llama.cpp's repacked layouts
            if t.speed is not None and t.speed.kernels is not None:
                t = replace(t, speed=replace(t.speed, kernels=t.speed.kernels.without_repacking()))
            units.append(_unit(f"rpc:{t.label}", "rpc", t, net))
        else:
            if _whole_machine(t):
                raise UsageError(f"{t.label} is a whole machine: reach it over the network as rpc:{name}, or make it the "
                                 "first device (the host)")
            units.append(_unit(t.label, "gpu", t, pcie_link(t.label)))
    for srv in live:  # what a server reports is its memory; its speed is taken as the host CPU's
        h = units[0]
        sp = replace(h.speed, kernels=h.speed.kernels.without_repacking()) if h.speed and h.speed.kernels else h.speed
        units.append(Unit(f"rpc:{srv.endpoint}", "rpc", sp, h.params, srv.free_bytes, net))
        notes.append(f"rpc:{srv.endpoint} reports {srv.free_bytes / 1e9:.2f} GB free (RPC protocol {srv.version}); its speed "
                     "is taken as the host CPU's (an RPC server serves its plain buffers: no repacked kernels)")
    names = [u.name for u in units]
    for n in set(names):
        if names.count(n) > 1:  # the same device twice is two of them: number them as llama.cpp does
            k = 0
            for j, u in enumerate(units):
                if u.name == n:
                    units[j] = replace(u, name=f"{n} #{k}")
                    k += 1
    return tuple(units), notes


def _whole_machine(t: Target) -> bool:
    """A device that runs llama.cpp itself (a Mac, a phone, a board, this machine) rather than a card in one."""
    return t.basis.get("kind") != "gpu"


def command_line(spec, pl, opts: SplitOptions, s: RuntimeSettings) -> str:
    """The llama.cpp flags that make this split (llama-server; llama-cli takes the same)."""
    args = ["llama-server", "-m", f"{spec.name}.gguf" if not spec.name.endswith(".gguf") else spec.name,
            "-c", str(s.n_ctx), "-ngl", str(pl.gpu_layers if opts.n_gpu_layers is not None else 999)]
    if opts.cpu_moe:
        args.append("--cpu-moe")
    if opts.n_cpu_moe:
        args += ["--n-cpu-moe", str(opts.n_cpu_moe)]
    for p, d in opts.overrides:
        args += ["-ot", f"'{p}={d}'"]
    if opts.no_kv_offload:
        args.append("-nkvo")
    if opts.tensor_split:
        args += ["-ts", ",".join(f"{x:g}" for x in opts.tensor_split)]
    if opts.split_mode != "layer":
        args += ["-sm", opts.split_mode]
    if s.flash_attn:
        args += ["-fa", "on"]
    rpc = [u for u in pl.units if u.role == "rpc"]
    if rpc:
        args += ["--rpc", ",".join(u.name[4:] if re.fullmatch(r"rpc:.+:\d+", u.name) else f"HOST{i + 1}:{RPC_PORT}"
                                   for i, u in enumerate(rpc))]
    return " ".join(args)


def estimate_split(spec, model_basis: dict[str, Any], device: str, host: str | None, link: str | None,
                   opts: SplitOptions, s: RuntimeSettings, resolve, n_prompt: int = DEFAULT_PROMPT,
                   rpc: str | None = None) -> dict[str, Any]:
    """What `fitcheck estimate` answers for a split (`rpc`: live servers, HOST:PORT,...)."""
    live = []
    if rpc:
        from fitcheck.calibration.rpc import parse_endpoints, probe_server

        live = [probe_server(h, p) for h, p in parse_endpoints(rpc)]
    units, notes = units_for(device, host, link, resolve, live)
    pl = place(spec, units, opts)
    mem = memory(spec, s, pl)
    sp = None
    try:
        sp = speed(spec, pl, s, n_prompt=n_prompt)
    except UsageError as e:
        notes.append(str(e))
    fits = all(m.fit.verdict in ("fits", "tight") for m in mem)
    over = [m.name for m in mem if m.fit.verdict not in ("fits", "tight")]
    verdict = "fits" if fits and all(m.fit.verdict == "fits" for m in mem) else ("tight" if fits else "does_not_fit")
    return {
        "model": {"name": spec.name, "architecture": spec.architecture, "parameter_count": spec.parameter_count,
                  "quant": spec.file_type, "n_layer": spec.n_layer, "n_expert": spec.n_expert},
        "split": {"devices": [{"name": u.name, "role": u.role, "backend": u.speed.backend if u.speed else None,
                               "usable_bytes": u.usable_bytes,
                               "link": ({"name": u.link.name, "gbit_s": u.link.gbit_s, "rtt_ms": u.link.rtt_s * 1e3,
                                         "source": u.link.source} if u.link else None)} for u in units],
                  "options": {"n_gpu_layers": pl.gpu_layers, "n_cpu_moe": opts.n_cpu_moe, "cpu_moe": opts.cpu_moe,
                              "overrides": [list(o) for o in opts.overrides], "no_kv_offload": opts.no_kv_offload,
                              "tensor_split": list(opts.tensor_split), "split_mode": opts.split_mode},
                  "layers": [m.layers for m in mem]},
        "memory": [{"device": m.name, "weights_bytes": m.weights_bytes, "kv_bytes": m.kv_bytes,
                    "compute_bytes": m.compute_bytes, "other_bytes": m.other_bytes, "total_bytes": m.total_bytes,
                    "usable_bytes": m.usable_bytes, "verdict": m.fit.verdict, "note": m.share_note} for m in mem],
        "verdict": verdict, "over": over,
        "speed": sp.to_dict() if sp else None,
        "command": command_line(spec, pl, opts, s),
        "notes": list(pl.notes) + notes + (list(sp.notes) if sp else []),
        "basis": {**model_basis, "settings": {"n_ctx": s.n_ctx, "n_ubatch": s.n_ubatch, "flash_attn": s.flash_attn},
                  "n_prompt": n_prompt,
                  "rules": "llama.cpp's loader, overrides, KV placement, scheduler and RPC client (fitcheck/estimator/placement.py)"},
    }


def advise_split(model: str, device: str, host: str | None, link: str | None, s: RuntimeSettings, resolve,
                 target_tps: float | None = None) -> dict[str, Any]:
    """`advise` over the devices a user has: the fewest of them (in the order named) on which some quantization fits
    with headroom on every device and meets the speed target, the best-quality such quantization, its speed and
    command line; each smaller set with why it does not do. Layers go by free memory, spilling to the host's RAM
    (-ngl) when the devices alone are too small."""
    from fitcheck.advise import CANDIDATES, quality_table
    from fitcheck.model.catalog import resolve as resolve_model, spec_from_catalog

    entry, _ = resolve_model(model)
    units, notes = units_for(device, host, link, resolve)
    quality = quality_table()
    ranked = sorted(CANDIDATES, key=lambda q: (quality.get(q, {}).get("kld_mean", 9), q))
    sets, choice = [], None
    for k in range(len(units)):  # the host alone first (when it runs the model itself), then one device more each time
        sub = units[:k + 1]
        tried = []
        for q in ranked:
            spec = spec_from_catalog(entry, q)
            row = _best_split(spec, sub, s)
            if row is None:
                tried.append({"quant": q, "fits": False})
                continue
            row.update(quant=q, kld_mean=quality.get(q, {}).get("kld_mean"))
            fast = target_tps is None or (row["decode_tps"] or 0) >= target_tps
            tried.append({**row, "fits": True, "meets_target": fast})
            if fast:
                choice = {**row, "devices": [u.name for u in sub]}
                break
        sets.append({"devices": [u.name for u in sub], "best": next((t for t in tried if t.get("meets_target")), None),
                     "fitting": [t["quant"] for t in tried if t["fits"]]})
        if choice:
            break
    return {"model": entry.id, "model_name": entry.name, "target_tps": target_tps, "sets": sets, "choice": choice,
            "notes": notes, "quality_source": "llama.cpp perplexity scoreboard (fitcheck/data/quant_quality.csv)"}


def _best_split(spec, units, s: RuntimeSettings) -> dict[str, Any] | None:
    """Every layer on the devices when they hold it, else the most that fit (the rest in the host's RAM)."""
    for ngl in range(spec.n_layer + 1, -1, -1):
        opts = SplitOptions(n_gpu_layers=ngl)
        pl = place(spec, units, opts)
        mem = memory(spec, s, pl)
        if all(m.fit.verdict == "fits" for m in mem):
            try:
                sp = speed(spec, pl, s)
            except UsageError:
                sp = None
            return {"n_gpu_layers": ngl, "decode_tps": sp.decode_tps if sp else None,
                    "prefill_tps": sp.prefill_tps if sp else None, "command": command_line(spec, pl, opts, s),
                    "memory": [{"device": m.name, "total_bytes": m.total_bytes, "usable_bytes": m.usable_bytes}
                               for m in mem]}
        if len(units) == 1:
            break  # the host alone: nothing to offload to
    return None
