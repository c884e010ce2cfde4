"""The fitcheck command line: thin typer commands over the public API.

Heavy modules (numpy, gguf, llama_cpp, mlx, scipy) are imported inside the
commands so `fitcheck --help` stays instant.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from .errors import FitcheckError

app = typer.Typer(
    help="Can this device run that LLM, at which quantization, and how fast?",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
DEVICE_OPT = typer.Option("this", "--device", "-d", help="'this' (the probed profile), a saved profile (.json), or a device (`fitcheck devices`), NAME:RAM to pick its RAM.")
MEMORY_GB_OPT = typer.Option(None, "--memory-gb", help="Usable memory in GiB (overrides the device).")
ENTITLEMENT_OPT = typer.Option(False, "--ios-entitlement", help="iOS/iPadOS app with the increased-memory-limit entitlement.")
BANDWIDTH_OPT = typer.Option(None, "--bandwidth-gbs", help="Override memory bandwidth (GB/s).")


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, non-zero exit."""
    err_console.print(f"fitcheck: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn):
    """Turn fitcheck's own errors (and OS errors) into one-line messages."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FitcheckError as e:
            fail(str(e))
        except OSError as e:
            fail(f"{e.filename + ': ' if getattr(e, 'filename', None) else ''}{e.strerror or e}")
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def show(data: Any, json_out: bool, view) -> None:
    """Print `data` as JSON, or through its rich view."""
    if json_out:
        emit_json(data)
    else:
        view(console, data)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Main job only: print JSON."),
) -> None:
    """With no command: probe this device (once) and answer for 1.8B, 4B and 7B."""
    if ctx.invoked_subcommand is None:
        guarded(_main_job)(json_out)


def _profile_or_probe() -> dict:
    """The saved profile, or a quick probe (saved) when there is none."""
    from . import profile as prof_mod
    from .errors import ProfileError

    try:
        return prof_mod.load()
    except ProfileError as e:
        if "no saved profile" not in str(e):
            err_console.print(f"warning: {e}; probing again", markup=False, soft_wrap=True)
        with err_console.status("no saved profile: probing this device (quick, ~15 s) ..."):
            prof = prof_mod.collect(quick=True)
        try:
            prof_mod.save(prof)
        except FitcheckError as e:
            err_console.print(f"warning: profile not saved: {e}", markup=False, soft_wrap=True)
        return prof


def _main_job(json_out: bool) -> None:
    from .answer import answer_for_profile
    from .render import answer_view

    show(answer_for_profile(_profile_or_probe()), json_out, answer_view)


@app.command()
@guarded
def inspect(
    path: str = typer.Argument(..., help="GGUF file (any part of a split model)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Read a GGUF model's header and tensor table (never its tensor data)."""
    from .inspection import inspect_gguf
    from .render import inspect_view

    d = inspect_gguf(path)
    show(d, json_out, inspect_view)


@app.command()
@guarded
def probe(
    quick: bool = typer.Option(False, "--quick", help="Fewer repetitions (under 15 s)."),
    save: bool = typer.Option(True, "--save/--no-save", help="Save the profile as device 'this'."),
    json_out: bool = JSON_OPT,
) -> None:
    """Measure this device: RAM and limits, CPU, memory bandwidth, compute, accelerators, disk, llama.cpp."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from . import profile as prof_mod
    from .render import profile_view
    from probes import PROBES

    progress_console = err_console if json_out else console
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=progress_console, transient=True) as bar:
        task = bar.add_task("probing", total=len(PROBES))

        def on_step(name: str) -> None:
            done = list(PROBES).index(name) if name in PROBES else 0
            bar.update(task, completed=done, description=f"probing {name}")

        prof = prof_mod.collect(quick=quick, on_step=on_step)
        bar.update(task, completed=len(PROBES))
    saved = None
    if save:
        try:
            saved = prof_mod.save(prof)
        except FitcheckError as e:
            prof["warnings"].append(f"profile not saved: {e}")
    show(prof, json_out, profile_view)
    if saved and not json_out:
        console.print(f"saved as device 'this': {saved}")
    for w in prof["warnings"]:
        err_console.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@guarded
def estimate(
    model: str = typer.Option(..., "--model", "-m", help="GGUF path, catalog id (see `fitcheck models`) or size alias (1.8b, 4b, 7b ...)."),
    quant: Optional[str] = typer.Option(None, "--quant", "-q", help="Quantization for catalog models (default Q4_K_M)."),
    ctx: int = typer.Option(4096, "--ctx", help="Context length (tokens)."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type for K and V: f16, q8_0, q4_0 ..."),
    gpu_layers: int = typer.Option(0, "--gpu-layers", help="Layers offloaded to an accelerator."),
    flash_attn: bool = typer.Option(False, "--flash-attn/--no-flash-attn", help="Flash attention (needed for a quantized V cache)."),
    swa_full: bool = typer.Option(True, "--swa-full/--no-swa-full", help="Full-size KV on sliding-window layers (llama-cpp-python's default)."),
    batch: int = typer.Option(512, "--batch", help="n_batch."),
    ubatch: int = typer.Option(512, "--ubatch", help="n_ubatch: sets the compute buffer."),
    device: str = DEVICE_OPT,
    memory_gb: Optional[float] = MEMORY_GB_OPT,
    entitlement: bool = ENTITLEMENT_OPT,
    bandwidth_gbs: Optional[float] = BANDWIDTH_OPT,
    tflops: Optional[float] = typer.Option(None, "--tflops", help="Override peak compute (TFLOPS)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Override the backend class: cpu, metal, cuda."),
    n_prompt: int = typer.Option(512, "--prompt", help="Prompt length for prefill and TTFT."),
    json_out: bool = JSON_OPT,
) -> None:
    """Will it fit? Memory llama.cpp needs for a model (weights, KV cache, compute, overhead) and a verdict."""
    from .estimate import estimate as run_estimate
    from .render import estimate_view
    from .settings import RuntimeSettings

    s = RuntimeSettings(n_ctx=ctx, n_batch=batch, n_ubatch=ubatch, n_gpu_layers=gpu_layers, flash_attn=flash_attn,
                        type_k=kv_type.lower(), type_v=kv_type.lower(), swa_full=swa_full)
    if n_prompt < 1 or n_prompt > ctx:
        raise FitcheckError(f"--prompt must be between 1 and the context length {ctx}, got {n_prompt}")
    d = run_estimate(model, quant, s, device, memory_gb, n_prompt=n_prompt, entitlement=entitlement,
                     bandwidth_gbs=bandwidth_gbs, tflops=tflops, backend=backend)
    show(d, json_out, estimate_view)
    for w in d["warnings"]:
        err_console.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@guarded
def models(json_out: bool = JSON_OPT) -> None:
    """The built-in catalog: model ids, size aliases and quantization formats."""
    from .catalog import ALIASES, entries
    from .quants import FORMATS
    from .render import models_view

    d = {
        "models": [{"id": e.id, "name": e.name, "arch": e.arch, "params_b_published": e.params_b_published,
                    "n_layer": e.n_layer, "n_ctx_train": e.n_ctx_train, "verification": e.verification,
                    "source": e.source} for e in entries().values()],
        "aliases": ALIASES,
        "quants": {k: {"runtime": f.runtime, "base_type": f.base_type, "nominal_bpw": round(f.nominal_bpw, 4), "note": f.note}
                   for k, f in FORMATS.items()},
    }
    show(d, json_out, models_view)


@app.command()
@guarded
def devices(
    query: Optional[str] = typer.Argument(None, help="Words to search in device ids and names."),
    json_out: bool = JSON_OPT,
) -> None:
    """The device database: chips, phones, boards, Macs, PC memory setups, with sources."""
    import device_db

    from .render import devices_view

    hits = device_db.search(query)
    if not hits:
        import difflib

        near = difflib.get_close_matches((query or "").lower(), list(device_db.devices()), n=4, cutoff=0.4)
        raise FitcheckError(f"no device matches {query!r}; nearest: {', '.join(near) or 'none'}")
    if json_out:
        emit_json([d.to_dict() for d in hits])
    else:
        devices_view(console, hits)


def _alternatives(device: str, memory_gb: float | None, entitlement: bool, host_memory_gb: float | None):
    """Ways out that depend on the device: the iOS entitlement, system RAM beside a discrete GPU."""
    from .advise import Alternatives, HostSide

    name = device.strip()
    if memory_gb is not None or name.lower() == "this" or name.lower().endswith(".json"):
        return None
    import device_db

    dev, ram_gb = device_db.resolve(name)
    if dev.kind == "gpu":
        from . import profile as prof_mod

        try:
            prof = prof_mod.load()
        except FitcheckError:
            prof = None
        bw = (prof or {}).get("bandwidth", {})
        read = bw.get("read_gbps") if bw.get("status") == "ok" else None
        if host_memory_gb is not None:
            if not 0 < host_memory_gb <= 1 << 20:
                raise FitcheckError(f"--host-memory-gb must be between 0 and {1 << 20}, got {host_memory_gb}")
            host = HostSide(int(host_memory_gb * (1 << 30)), read, f"--host-memory-gb {host_memory_gb}")
        elif prof is not None:
            mem = prof["memory"]
            host = HostSide(min(mem["available_bytes"], mem["limit_bytes"]), read, "this machine's saved probe")
        else:
            host = HostSide(None, None, "unknown (give --host-memory-gb)")
        return Alternatives(host=host)
    if dev.os in ("iOS", "iPadOS") and not entitlement:
        usable, basis = device_db.device_usable_bytes(dev, ram_gb, entitlement=True)
        return Alternatives(entitlement_usable_bytes=usable, entitlement_rule=basis["memory_rule"])
    return None


@app.command()
@guarded
def advise(
    size: Optional[str] = typer.Option(None, "--size", "-s", help="Size alias: 1.8b, 4b, 7b ..."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Catalog model id (instead of --size)."),
    device: str = DEVICE_OPT,
    ctx: int = typer.Option(4096, "--ctx", help="Context length (tokens)."),
    target_tps: Optional[float] = typer.Option(None, "--target-tps", help="Decode speed the answer must reach."),
    memory_gb: Optional[float] = MEMORY_GB_OPT,
    entitlement: bool = ENTITLEMENT_OPT,
    bandwidth_gbs: Optional[float] = BANDWIDTH_OPT,
    host_memory_gb: Optional[float] = typer.Option(None, "--host-memory-gb", help="System RAM usable beside a discrete GPU (GiB), for partial offload; default: this machine's probe."),
    json_out: bool = JSON_OPT,
) -> None:
    """The best quantization that fits with headroom and meets a speed target, ranked by quality."""
    from . import device_speed
    from .advise import advise as run_advise
    from .estimate import speed_inputs, usable_memory
    from .render import advise_view
    from .settings import RuntimeSettings

    if (size is None) == (model is None):
        raise FitcheckError("give exactly one of --size or --model")
    usable, basis = usable_memory(device, memory_gb, entitlement)
    try:
        dev, sbasis = speed_inputs(device, bandwidth_gbs)
        params, _, _ = device_speed.params_for_basis(dev.backend, sbasis)
    except FitcheckError:
        if target_tps is not None:
            raise
        dev = params = None
    alt = _alternatives(device, memory_gb, entitlement, host_memory_gb)
    d = run_advise(size or model, usable, RuntimeSettings(n_ctx=ctx), dev, params, target_tps, alt)
    d["basis"] = basis
    show(d, json_out, advise_view)


@app.command()
@guarded
def forecast(
    device_class: str = typer.Option("phone-flagship", "--class", "-c", help="Device class: phone-flagship, iphone, android-flagship, apple-m-base, apple-m-pro, apple-m-max, apple-m-ultra, sbc, nvidia-consumer-gpu, nvidia-datacenter-gpu."),
    size: str = typer.Option("7b", "--size", "-s", help="Size alias or catalog model id."),
    quant: str = typer.Option("Q4_K_M", "--quant", "-q", help="Quantization."),
    target_tps: float = typer.Option(5.0, "--target-tps", help="Decode speed the class must reach."),
    ctx: int = typer.Option(4096, "--ctx", help="Context length (tokens)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Use only devices released by YYYY[-MM] (what the data said then)."),
    config: str = typer.Option("best", "--config", help="'best' (largest RAM option, largest GPU variant) or 'base'."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Also draw the trends and the forecast to this PNG."),
    json_out: bool = JSON_OPT,
) -> None:
    """When does a class of devices first run a size at a quantization and speed? Trends over release years."""
    from .forecast import forecast as run_forecast
    from .render import forecast_view
    from .settings import RuntimeSettings

    r = run_forecast(device_class, size, quant, target_tps, RuntimeSettings(n_ctx=ctx), as_of, config)
    d = r.to_dict()
    if plot:
        from .plots import forecast_plot

        d["plot"] = str(forecast_plot(r, plot))
    show(d, json_out, forecast_view)
    if plot and not json_out:
        console.print(f"plot: {d['plot']}")


@app.command()
@guarded
def scan(
    paths: Optional[list[str]] = typer.Argument(None, help="Extra files or folders to search."),
    device: str = DEVICE_OPT,
    memory_gb: Optional[float] = MEMORY_GB_OPT,
    ctx: int = typer.Option(4096, "--ctx", help="Context length (tokens) the estimates assume."),
    stores: bool = typer.Option(True, "--stores/--no-stores", help="Search Ollama, LM Studio, Jan, llama.cpp, HF and GPT4All stores."),
    json_out: bool = JSON_OPT,
) -> None:
    """Find the GGUF models already on this machine (Ollama, LM Studio, Jan, llama.cpp, HF cache, GPT4All) and answer for each."""
    from . import device_speed
    from .estimate import speed_inputs, usable_memory
    from .render import scan_view
    from .scan import scan as run_scan
    from .settings import RuntimeSettings

    usable, basis = usable_memory(device, memory_gb)
    speed, warnings = None, []
    try:
        dev, sbasis = speed_inputs(device)
        speed = (dev, device_speed.params_for_basis(dev.backend, sbasis)[0])
    except FitcheckError as e:
        warnings.append(f"no speed estimates: {e}")
    d = run_scan(paths or [], stores, usable, speed, RuntimeSettings(n_ctx=ctx))
    d["basis"] = basis
    show(d, json_out, scan_view)
    for w in warnings:
        err_console.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@guarded
def report(
    device: str = DEVICE_OPT,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="HTML path (default reports/fitcheck-DEVICE.html); the .md and a _files/ folder of PNGs go beside it."),
    device_class: Optional[str] = typer.Option(None, "--class", "-c", help="Forecast class (default: the device's own; phone-flagship for this device)."),
    entitlement: bool = ENTITLEMENT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Write an HTML + Markdown report: device, size x quant table, memory and speed plots, forecast, sources."""
    from .report import write_report

    prof = _profile_or_probe() if device == "this" else None
    d = write_report(device, out, device_class, entitlement, prof)
    if json_out:
        emit_json(d)
    else:
        for line in d["answers"]:
            console.print(line, soft_wrap=True)
        console.print(f"report: {d['html']} (and {d['markdown']})", soft_wrap=True)


@app.command()
@guarded
def calibrate(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Calibrate on this GGUF instead of fitcheck's synthetic pair."),
    quick: bool = typer.Option(False, "--quick", help="Shorter runs (pp128, tg32, 2 repetitions)."),
    force: bool = typer.Option(False, "--force", help="Run even when the memory estimate says it would not fit with margin."),
    from_llama_bench: Optional[str] = typer.Option(None, "--from-llama-bench", help="Calibrate from llama-bench JSON output instead of running."),
    llama_bench_out: Optional[str] = typer.Option(None, "--llama-bench-out", help="Also write the runs as llama-bench JSON records."),
    json_out: bool = JSON_OPT,
) -> None:
    """Run llama.cpp for real on this device and calibrate every later forecast with it."""
    import json as _json

    from . import profile as prof_mod
    from .calibrate import CalibrationError, calibrate as run_calibration, to_llama_bench
    from .calibrate import from_llama_bench as calibration_from_llama_bench
    from .render import calibration_view

    prof = _profile_or_probe()
    if from_llama_bench:
        try:
            records = _json.loads(open(from_llama_bench).read())
        except (OSError, ValueError) as e:
            raise CalibrationError(f"{from_llama_bench}: cannot read llama-bench JSON: {e}") from None
        cal = calibration_from_llama_bench(records, prof)
    else:
        with err_console.status("calibrating ...") as status:
            cal = run_calibration(prof, model=model, quick=quick, force=force,
                                  on_step=lambda msg: status.update(f"calibrating: {msg}"))
    prof["calibration"] = cal.to_dict()
    prof_mod.save(prof)  # atomic: on any failure above the saved profile is untouched
    if llama_bench_out:
        with open(llama_bench_out, "w") as f:
            _json.dump(to_llama_bench(cal), f, indent=2)
    if json_out:
        emit_json({**cal.to_dict(), "llama_bench": to_llama_bench(cal)})
    else:
        calibration_view(console, cal.to_dict())
    for n in cal.notes:
        err_console.print(f"note: {n}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@guarded
def backtest(
    csv_path: str = typer.Argument(..., metavar="CSV", help="Measurements in the schema of published_benchmarks_dev.csv."),
    json_out: bool = JSON_OPT,
) -> None:
    """Predict every row of a CSV of published measurements and print the errors."""
    from .backtest import backtest as run_backtest
    from .render import backtest_view

    d = run_backtest(csv_path)
    show(d, json_out, backtest_view)
    if d["overall"]["n"] == 0:
        raise FitcheckError(f"{csv_path}: no row could be evaluated ({d['overall']['unresolved']} unresolved)")


def main() -> None:
    app()
