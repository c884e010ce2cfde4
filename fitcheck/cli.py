"""The fitcheck command line: thin typer commands over the public API.

Heavy modules (numpy, gguf, llama_cpp, mlx, scipy) are imported inside the
commands so `fitcheck --help` stays instant.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

import re

from fitcheck.errors import FitcheckError, Interrupted, UsageError

app = typer.Typer(
    help="Can this device run that LLM, at which quantization, and how fast?",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help (click's): options and their text wrapped under them at the terminal's width, not a boxed table
    # whose text column shrinks to a few characters at 80 columns
    rich_markup_mode=None,
)
console = Console()
err_console = Console(stderr=True)

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
RUNTIME_OPT = typer.Option(None, "--runtime", help="Take the context, batch, flash attention, SWA cache and mmap defaults of a runtime: ollama, llama-server, llama-cli, lm-studio, pocketpal, llama.rn, koboldcpp, jan, llama-cpp-python (options given here win).")
DEVICE_OPT = typer.Option("this", "--device", "-d", help="'this' (the probed profile), a saved profile (.json), or a device as you would say it: \"iPhone 15 Pro\", \"MacBook Air M1 16GB\", \"Pi 5 8GB\", \"RTX 4090\" (`fitcheck devices`).")
MEMORY_GB_OPT = typer.Option(None, "--memory-gb", help="Usable memory in GB (1 GB = 1e9 bytes; overrides the device).")
ENTITLEMENT_OPT = typer.Option(False, "--ios-entitlement", help="iOS/iPadOS app with the increased-memory-limit entitlement.")
BACKEND_OPT = typer.Option(None, "--backend", help="Backend class: cpu, metal, cuda, vulkan, rocm, opencl, hexagon, mlx, mlc (default: the device's usual one; `fitcheck devices NAME` lists what it runs).")
THREADS_OPT = typer.Option(None, "--threads", help="CPU threads (default: what the usual runtime uses: phone apps 6, llama.cpp the performance cores).")
BANDWIDTH_OPT = typer.Option(None, "--bandwidth-gbps", "--bandwidth-gbs", help="Override memory bandwidth (GB/s).")
GPU_LAYERS_OPT = typer.Option(None, "--gpu-layers", "-ngl", "--n-gpu-layers", help="Layers on the accelerators (llama.cpp's -ngl; above the layer count the output head too). [default: all where devices are named]")
HOST_OPT = typer.Option(None, "--host", help="The machine that runs llama.cpp and holds what stays on the CPU (its RAM and bandwidth). [default: this machine, or the first device when it is a whole machine]")
LINK_OPT = typer.Option(None, "--link", help="The rpc: devices' network: 1gbe, 2.5gbe, 10gbe, 25gbe, tb4, tb5, wifi6, loopback, or GBIT/MS (0.3/5: 300 Mbit/s, 5 ms round trip). [default: 1gbe]")
N_CPU_MOE_OPT = typer.Option(0, "--n-cpu-moe", "-ncmoe", help="Keep the experts of the first N layers on the CPU (llama.cpp's --n-cpu-moe).")
CPU_MOE_OPT = typer.Option(False, "--cpu-moe", "-cmoe", help="Keep every expert on the CPU (llama.cpp's --cpu-moe).")
OVERRIDE_OPT = typer.Option(None, "--override-tensor", "-ot", help="REGEX=DEVICE: tensors matching go to DEVICE (CPU, CUDA0, RPC0, or a device's name); repeatable.")
NKVO_OPT = typer.Option(False, "--no-kv-offload", "-nkvo", help="Keep the KV cache (and attention) on the host.")
TENSOR_SPLIT_OPT = typer.Option(None, "--tensor-split", "-ts", help="Shares of the layers per device, e.g. 3,1 (llama.cpp's order: rpc: devices first). [default: by free memory]")
SPLIT_MODE_OPT = typer.Option("layer", "--split-mode", "-sm", help="layer (whole layers per device), row/tensor (each matrix across local GPUs), none.")
TARGET_TPS_OPT = typer.Option(None, "--target-tps", help="Decode speed (tokens/s) an answer must reach to be 'yes' (default 5, a reading pace).")


def say_error(message: str) -> None:
    """One line on stderr: no control codes, whatever the message held."""
    from fitcheck.views.text import clean

    line = " ".join(clean(message, 2000).split())
    err_console.print(f"fitcheck: error: {line}", markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, non-zero exit."""
    say_error(message)
    raise typer.Exit(code)


def warn(message: str, prefix: str = "warning") -> None:
    from fitcheck.views.text import clean

    err_console.print(f"{prefix}: {clean(message, 2000)}", markup=False, highlight=False, soft_wrap=True)


def guarded(fn):
    """Turn fitcheck's own errors (and OS errors) into one-line messages."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Interrupted as e:
            fail(str(e), 128 + e.signum)
        except FitcheckError as e:
            fail(str(e))
        except OSError as e:
            from fitcheck.text import shown

            name = getattr(e, "filename", None)  # a 10 000-character path must not crowd out the reason
            fail(f"{(name if len(str(name)) <= 200 else shown(name, 200)) + ': ' if name else ''}{e.strerror or e}")
        except KeyboardInterrupt:
            fail("interrupted (SIGINT)", 130)

    return wrapper


def emit_json(data: Any) -> None:
    from fitcheck.jsonio import dumps

    sys.stdout.write(dumps(data, indent=2) + "\n")  # strict: NaN and Infinity become null


def show(data: Any, json_out: bool, view) -> None:
    """Print `data` as JSON, or through its rich view."""
    if json_out:
        emit_json(data)
    else:
        view(console, data)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    device: str = typer.Option("this", "--device", "-d", help="Main job only: the device to answer for (default: this one, probed once)."),
    target_tps: Optional[float] = TARGET_TPS_OPT,
    runtime: Optional[str] = typer.Option(None, "--runtime", help="Main job only: answer with a runtime's defaults (context, batch, flash attention, SWA cache, mmap): ollama, llama-server, lm-studio, pocketpal, ..."),
    json_out: bool = typer.Option(False, "--json", help="Main job only: print JSON."),
    host: Optional[str] = typer.Option(None, "--host", help="Main job only, with several devices (-d \"A + rpc:B\"): the machine that runs llama.cpp."),
    link: Optional[str] = typer.Option(None, "--link", help="Main job only: the rpc: devices' network (see `fitcheck estimate --help`)."),
) -> None:
    """With no command: probe this device (once) and answer for 1.8B, 4B and 7B."""
    if ctx.invoked_subcommand is None:
        from fitcheck.split import names_several

        if names_several(device, host):
            guarded(_main_split)(device, host, link, target_tps, runtime, json_out)
        else:
            guarded(_main_job)(device, target_tps, runtime, json_out)


def _profile_or_probe() -> dict:
    """The saved profile, or a quick probe (saved) when there is none or it cannot be used."""
    from fitcheck.device import profile as prof_mod
    from fitcheck.errors import NoProfileError, ProfileError

    try:
        prof = prof_mod.load()
        from fitcheck.device.resolve import profile_usable

        profile_usable(prof)  # a profile whose memory probe failed is probed again, not used
        return prof
    except ProfileError as e:
        if not isinstance(e, NoProfileError):
            warn(f"{e}; probing again")
        with err_console.status("no usable profile: probing this device (quick, ~15 s) ...") as status:
            from fitcheck.calibration.kernels import probe_device

            prof = probe_device(quick=True, kernel_step=lambda msg: status.update(f"probing {msg} ..."))
        try:
            prof_mod.save(prof)
        except FitcheckError as e:
            warn(f"profile not saved: {e}")
        return prof


def _target(device: str, **kw):
    """The device resolved once; 'this' probes first when there is no saved profile and `probe` is set."""
    from fitcheck.device.resolve import resolve_target

    probe = kw.pop("probe", False)
    prof = _profile_or_probe() if probe and device.strip().lower() == "this" else None
    return resolve_target(device, profile=prof, **kw), prof


def _warnings(d: dict) -> None:
    for w in dict.fromkeys(d.get("warnings", [])):
        warn(w)


def _main_job(device: str, target_tps: float | None, runtime: str | None, json_out: bool) -> None:
    from fitcheck.answer import answer
    from fitcheck.estimator.evaluate import USABLE_TPS
    from fitcheck.runtimes import runtime_settings
    from fitcheck.views.render import answer_view

    s, _, ctx_from_model = runtime_settings(runtime, {})
    target, _ = _target(device, probe=True)
    d = answer(target, settings=s, ctx_from_model=ctx_from_model,
               target_tps=USABLE_TPS if target_tps is None else target_tps)
    show(d, json_out, answer_view)
    _warnings(d)


def _main_split(device: str, host: str | None, link: str | None, target_tps: float | None, runtime: str | None,
                json_out: bool) -> None:
    """The main job over several devices: for 1.8B, 4B and 7B, the fewest devices that run it fast enough."""
    from fitcheck.answer import SIZES
    from fitcheck.estimator.evaluate import USABLE_TPS
    from fitcheck.runtimes import runtime_settings
    from fitcheck.split import advise_split
    from fitcheck.views.render import advise_split_view
    from fitcheck.views.text import esc

    s, _, _ = runtime_settings(runtime, {})
    if "this" in device.lower() or host is None:
        _profile_or_probe()
    tps = USABLE_TPS if target_tps is None else target_tps
    resolve = lambda name, backend=None: _target(name, backend=backend)[0]  # noqa: E731
    answers = {size: advise_split(size, device, host, link, s, resolve, tps) for size in SIZES}
    if json_out:
        emit_json({"target_tps": tps, "sizes": answers})
        return
    for size, d in answers.items():
        console.print(f"[bold]{size.upper()} ({esc(d['model_name'])})[/bold]", highlight=False)
        advise_split_view(console, d)


@app.command()
@guarded
def inspect(
    path: str = typer.Argument(..., help="GGUF file or URL (https://…, hf://org/repo/file.gguf; header only), any part of a split model."),
    json_out: bool = JSON_OPT,
) -> None:
    """Read a GGUF model's header and tensor table (never its tensor data)."""
    from fitcheck.model.inspection import inspect_gguf
    from fitcheck.views.render import inspect_view

    d = inspect_gguf(path)
    show(d, json_out, inspect_view)


@app.command()
@guarded
def probe(
    quick: bool = typer.Option(False, "--quick", help="Fewer repetitions, within about 17 s whatever the load (what it cut short, it says)."),
    save: bool = typer.Option(True, "--save/--no-save", help="Save the profile as device 'this'."),
    disk_dir: Optional[str] = typer.Option(None, "--disk-dir", help="Folder for the disk test: where your models live "
                                           "(their storage sets load time and paging speed). Default: fitcheck's data folder."),
    json_out: bool = JSON_OPT,
) -> None:
    """Measure this device: RAM and limits, CPU, memory bandwidth, compute, accelerators, disk, llama.cpp."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from fitcheck.device import profile as prof_mod
    from fitcheck.views.render import profile_view
    from probes import PROBES

    progress_console = err_console if json_out else console
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=progress_console, transient=True) as bar:
        task = bar.add_task("probing", total=len(PROBES))

        def on_step(name: str) -> None:
            done = list(PROBES).index(name) if name in PROBES else 0
            bar.update(task, completed=done, description=f"probing {name}")

        from fitcheck.calibration.kernels import probe_device

        prof = probe_device(quick, on_step, lambda msg: bar.update(task, description=f"probing {msg}"), disk_dir)
        bar.update(task, completed=len(PROBES))
    saved = None
    if save:
        try:
            old = prof_mod.load()
        except FitcheckError:
            old = None
        note = prof_mod.carry_calibration(prof, old)  # re-probing never drops a calibration silently
        if note:
            prof["warnings"].append(note)
        try:
            saved = prof_mod.save(prof)
        except FitcheckError as e:
            prof["warnings"].append(f"profile not saved: {e}")
    show(prof, json_out, profile_view)
    if saved and not json_out:
        console.print(f"saved as device 'this': {saved}")
    for w in prof["warnings"]:
        warn(w)


@app.command()
@guarded
def estimate(
    model: str = typer.Option(..., "--model", "-m", help="GGUF path or URL (https://…, hf://org/repo/file.gguf: header only), catalog id (see `fitcheck models`) or size alias (1.8b, 4b, 7b ...)."),
    quant: Optional[str] = typer.Option(None, "--quant", "-q", help="Quantization for catalog models (default Q4_K_M)."),
    runtime: Optional[str] = RUNTIME_OPT,
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context length (tokens). [default: 4096, or the runtime's]"),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type for K and V: f16, q8_0, q4_0 ..."),
    gpu_layers: Optional[int] = GPU_LAYERS_OPT,
    flash_attn: Optional[bool] = typer.Option(None, "--flash-attn/--no-flash-attn", help="Flash attention (needed for a quantized V cache). [default: off, or the runtime's]"),
    swa_full: Optional[bool] = typer.Option(None, "--swa-full/--no-swa-full", help="Full-size KV on sliding-window layers. [default: on (llama-cpp-python's), or the runtime's]"),
    batch: Optional[int] = typer.Option(None, "--batch", help="n_batch. [default: 512, or the runtime's]"),
    ubatch: Optional[int] = typer.Option(None, "--ubatch", help="n_ubatch: sets the compute buffer. [default: 512, or the runtime's]"),
    device: str = DEVICE_OPT,
    host: Optional[str] = HOST_OPT,
    link: Optional[str] = LINK_OPT,
    rpc: Optional[str] = typer.Option(None, "--rpc", help="HOST:PORT,...: live rpc-servers to split over, probed for their memory."),
    n_cpu_moe: int = N_CPU_MOE_OPT,
    cpu_moe: bool = CPU_MOE_OPT,
    override_tensor: Optional[list[str]] = OVERRIDE_OPT,
    no_kv_offload: bool = NKVO_OPT,
    tensor_split: Optional[str] = TENSOR_SPLIT_OPT,
    split_mode: str = SPLIT_MODE_OPT,
    memory_gb: Optional[float] = MEMORY_GB_OPT,
    entitlement: bool = ENTITLEMENT_OPT,
    bandwidth_gbs: Optional[float] = BANDWIDTH_OPT,
    tflops: Optional[float] = typer.Option(None, "--tflops", help="Override peak compute (TFLOPS, the kind the backend was fitted on)."),
    backend: Optional[str] = BACKEND_OPT,
    threads: Optional[int] = THREADS_OPT,
    n_prompt: Optional[int] = typer.Option(None, "--prompt", help="Prompt length for prefill and TTFT (default 512, or the context if shorter)."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Also the decode of 1, 2, 4 ... N requests at once (a server's batched decode): tokens/s in all and for each."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Tokens already in the cache (llama-bench's -d): decode there and the prompt's prefill on top; with it, or a context of 8192 or more, the answer shows speed at 0, 1/4, 1/2 and the whole context and the first token of a context-filling prompt."),
    mmap: Optional[bool] = typer.Option(None, "--mmap/--no-mmap", help="The runtime maps the weights (llama.cpp's default) or loads them (MLC, some apps): only mapped weights can page. [default: mmap, or the runtime's]"),
    repack: bool = typer.Option(True, "--repack/--no-repack", help="llama.cpp repacks some weight types for its CPU kernels (its default): repacked copies cannot page."),
    json_out: bool = JSON_OPT,
) -> None:
    """Will it fit, and how fast? Memory llama.cpp needs (weights, KV cache, compute, overhead), a verdict, t/s."""
    from fitcheck.estimate import estimate as run_estimate
    from fitcheck.views.render import estimate_view

    from fitcheck.runtimes import runtime_settings

    given = {"n_ctx": ctx, "n_batch": batch, "n_ubatch": ubatch, "flash_attn": flash_attn, "swa_full": swa_full,
             "use_mmap": mmap}
    split = _split_options(gpu_layers, n_cpu_moe, cpu_moe, override_tensor, no_kv_offload, tensor_split, split_mode)
    from fitcheck.split import wants_split

    if wants_split(device, host, split, gpu_layers is not None and _is_card(device), rpc):
        s, preset, ctx_from_model = runtime_settings(runtime, given, type_k=kv_type.lower(), type_v=kv_type.lower())
        _split_estimate(model, quant, device, host, link, split, s, ctx_from_model, n_prompt, threads, json_out, rpc)
        return
    gpu_layers = gpu_layers or 0
    s, preset, ctx_from_model = runtime_settings(runtime, given, n_gpu_layers=gpu_layers, type_k=kv_type.lower(),
                                                 type_v=kv_type.lower())
    opts = dict(memory_gb=memory_gb, entitlement=entitlement, bandwidth_gbps=bandwidth_gbs, tflops=tflops)
    target, _ = _target(device, backend=backend, threads=threads, **opts)
    target = target if repack else target.without_repacking()  # --no-repack: use_extra_bufts=false
    if gpu_layers and (target.speed is None or target.speed.backend == "cpu"):
        from dataclasses import replace as _replace

        s, gpu_layers = _replace(s, n_gpu_layers=0), 0
        target = _replace(target, warnings=target.warnings + (
            f"--gpu-layers: {target.label} runs llama.cpp on its CPU here (no accelerator): every layer stays in its RAM",))
    cpu_target = None
    if target.speed is not None and target.speed.backend != "cpu" and not gpu_layers:  # the mmap way out runs on the CPU

        try:
            cpu_target = _target(device, backend="cpu", threads=threads, **opts)[0]
        except UsageError:
            cpu_target = None  # a discrete card: its host CPU is not in the database entry
    d = run_estimate(model, target, quant, s, n_prompt=n_prompt, cpu_target=cpu_target, preset=preset,
                     ctx_from_model=ctx_from_model, depth=depth, parallel=parallel)
    show(d, json_out, estimate_view)
    _warnings(d)


def _split_options(gpu_layers, n_cpu_moe, cpu_moe, override_tensor, no_kv_offload, tensor_split, split_mode):
    """llama.cpp's split options as fitcheck.estimator.placement.SplitOptions (each checked, one line when wrong)."""
    from fitcheck.estimator.placement import SplitOptions

    overrides = []
    for o in override_tensor or []:
        for item in o.split(","):
            pat, eq, dev = item.rpartition("=")
            if not eq or not pat or not dev:
                raise UsageError(f"--override-tensor takes REGEX=DEVICE (e.g. 'exps=CPU'), got {item!r}")
            try:
                re.compile(pat)
            except re.error as e:
                raise UsageError(f"--override-tensor {pat!r} is not a regular expression: {e}") from None
            overrides.append((pat, dev))
    shares: tuple[float, ...] = ()
    if tensor_split:
        try:
            shares = tuple(float(x) for x in re.split(r"[,/]", tensor_split))
        except ValueError:
            raise UsageError(f"--tensor-split takes shares like 3,1 (one per device), got {tensor_split!r}") from None
    return SplitOptions(n_gpu_layers=gpu_layers, n_cpu_moe=n_cpu_moe, cpu_moe=cpu_moe, overrides=tuple(overrides),
                        no_kv_offload=no_kv_offload, tensor_split=shares, split_mode=split_mode.lower())


def _is_card(device: str) -> bool:
    """A discrete GPU named alone: --gpu-layers then splits it with its host."""
    from fitcheck.device.names import resolve

    try:
        return resolve(device).device.kind == "gpu" if device.strip().lower() not in ("this", "") else False
    except FitcheckError:
        return False


def _split_estimate(model, quant, device, host, link, split, s, ctx_from_model, n_prompt, threads, json_out, rpc) -> None:
    from dataclasses import replace as _replace

    from fitcheck.estimate import resolve_model
    from fitcheck.split import estimate_split
    from fitcheck.views.render import split_view

    spec, basis = resolve_model(model, quant)
    if ctx_from_model:
        s = _replace(s, n_ctx=spec.n_ctx_train)
    n_prompt = min(512, s.n_ctx) if n_prompt is None else n_prompt  # the default follows a short context
    if not 1 <= n_prompt <= s.n_ctx:
        raise UsageError(f"--prompt must be between 1 and the context length {s.n_ctx}, got {n_prompt}")
    resolve = lambda name, backend=None: _target(name, backend=backend, threads=threads)[0]  # noqa: E731
    d = estimate_split(spec, basis, device, host, link, split, s, resolve, n_prompt=n_prompt, rpc=rpc)
    show(d, json_out, split_view)
    if d["verdict"] == "does_not_fit" and not json_out:
        warn(f"{', '.join(d['over'])} over its memory: fewer layers there (-ngl, -ts) or experts on the CPU (--n-cpu-moe)")


@app.command()
@guarded
def models(
    query: Optional[str] = typer.Argument(None, help="A model as you would write it (\"Llama 3 8B\", \"qwen3:4b\", an HF id): "
                                                     "what it reads as, and the catalog entries with those words."),
    json_out: bool = JSON_OPT,
) -> None:
    """The built-in catalog: model ids, size aliases and quantization formats."""
    from fitcheck.model.catalog import ALIASES, entries, search_models
    from fitcheck.model.quants import FORMATS
    from fitcheck.views.render import models_view

    row = lambda e: {"id": e.id, "name": e.name, "arch": e.arch, "params_b_published": e.params_b_published,  # noqa: E731
                     "n_layer": e.n_layer, "n_ctx_train": e.n_ctx_train, "verification": e.verification,
                     "source": e.source}
    found = search_models(query) if query else None
    d = {
        "models": [row(e) for e in (found["models"] if found else entries().values())],
        "aliases": ALIASES,
        "quants": {k: {"runtime": f.runtime, "base_type": f.base_type, "nominal_bpw": round(f.nominal_bpw, 4), "note": f.note}
                   for k, f in FORMATS.items()},
    }
    if found:
        d = {"query": query, "resolved": found["resolved"], **d}
    show(d, json_out, models_view)


@app.command()
@guarded
def devices(
    query: Optional[str] = typer.Argument(None, help="A device as you would say it, or words to search: what it reads "
                                                     "as, and the devices with those words."),
    json_out: bool = JSON_OPT,
) -> None:
    """The device database: chips, phones, boards, Macs, PC memory setups, with sources."""
    from fitcheck.device.names import search_devices
    from fitcheck.views.render import devices_view

    found = search_devices(query)
    if json_out:
        emit_json({"query": query, "resolved": found["resolved"], "devices": [d.to_dict() for d in found["devices"]]})
    else:
        devices_view(console, found["devices"], found["resolved"])


@app.command()
@guarded
def advise(
    size: Optional[str] = typer.Option(None, "--size", "-s", help="Size alias: 1.8b, 4b, 7b ..."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Catalog model id (instead of --size)."),
    device: str = DEVICE_OPT,
    runtime: Optional[str] = RUNTIME_OPT,
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context length (tokens). [default: 4096, or the runtime's]"),
    target_tps: Optional[float] = typer.Option(None, "--target-tps", help="Decode speed (tokens/s) the answer must reach."),
    memory_gb: Optional[float] = MEMORY_GB_OPT,
    entitlement: bool = ENTITLEMENT_OPT,
    bandwidth_gbs: Optional[float] = BANDWIDTH_OPT,
    host_memory_gb: Optional[float] = typer.Option(None, "--host-memory-gb", help="System RAM usable beside a discrete GPU (GB), for partial offload; default: this machine's probe."),
    backend: Optional[str] = BACKEND_OPT,
    threads: Optional[int] = THREADS_OPT,
    host: Optional[str] = HOST_OPT,
    link: Optional[str] = LINK_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """The best quantization that fits with headroom and meets a speed target, ranked by quality."""
    from fitcheck.advise import advise as run_advise
    from fitcheck.runtimes import catalog_model_settings
    from fitcheck.views.render import advise_view

    if (size is None) == (model is None):
        raise UsageError("give exactly one of --size or --model")
    s = catalog_model_settings(runtime, ctx, size or model)
    from fitcheck.split import advise_split, names_several

    if names_several(device, host):
        from fitcheck.views.render import advise_split_view

        resolve = lambda name, backend=None: _target(name, backend=backend, threads=threads)[0]  # noqa: E731
        show(advise_split(size or model, device, host, link, s, resolve, target_tps), json_out, advise_split_view)
        return
    target, _ = _target(device, memory_gb=memory_gb, entitlement=entitlement, bandwidth_gbps=bandwidth_gbs,
                        host_memory_gb=host_memory_gb, backend=backend, threads=threads)
    d = run_advise(size or model, target, s, target_tps)
    show(d, json_out, advise_view)
    _warnings(d)


@app.command()
@guarded
def forecast(
    device_class: str = typer.Option("phone-flagship", "--class", "-c", help="Device class: phone-flagship, iphone, android-flagship, apple-m-base, apple-m-pro, apple-m-max, apple-m-ultra, sbc, nvidia-consumer-gpu, nvidia-datacenter-gpu."),
    size: str = typer.Option("7b", "--size", "-s", help="Size alias or catalog model id."),
    quant: str = typer.Option("Q4_K_M", "--quant", "-q", help="Quantization."),
    target_tps: float = typer.Option(5.0, "--target-tps", help="Decode speed the class must reach."),
    runtime: Optional[str] = RUNTIME_OPT,
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context length (tokens). [default: 4096, or the runtime's]"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Use only devices released by YYYY[-MM] (what the data said then)."),
    config: str = typer.Option("best", "--config", help="'best' (largest RAM option, largest GPU variant) or 'base'."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Also draw the trends and the forecast to this PNG."),
    json_out: bool = JSON_OPT,
) -> None:
    """When does a class of devices first run a size at a quantization and speed? Trends over release years."""
    from fitcheck.forecast import forecast as run_forecast
    from fitcheck.runtimes import catalog_model_settings
    from fitcheck.views.render import forecast_view

    s = catalog_model_settings(runtime, ctx, size)
    r = run_forecast(device_class, size, quant, target_tps, s, as_of, config)
    d = r.to_dict()
    if plot:
        from fitcheck.views.plots import forecast_plot

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
    runtime: Optional[str] = RUNTIME_OPT,
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context length (tokens) the estimates assume. [default: 4096, or the runtime's]"),
    stores: bool = typer.Option(True, "--stores/--no-stores", help="Search Ollama, LM Studio, Jan, llama.cpp, HF and GPT4All stores."),
    follow_links: bool = typer.Option(False, "--follow-links", help="Also read models that a store links to from outside it."),
    json_out: bool = JSON_OPT,
) -> None:
    """Find the GGUF models already on this machine (Ollama, LM Studio, Jan, llama.cpp, HF cache, GPT4All) and answer for each."""
    from fitcheck.runtimes import runtime_settings
    from fitcheck.scan import scan as run_scan
    from fitcheck.views.render import scan_view

    s, _, ctx_from_model = runtime_settings(runtime, {"n_ctx": ctx})
    target, _ = _target(device, memory_gb=memory_gb)
    d = run_scan(paths or [], stores, target, s, follow_links=follow_links, ctx_from_model=ctx_from_model)
    show(d, json_out, scan_view)
    for w in target.warnings:
        warn(w)


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
    from fitcheck.views.report import report_path, write_report

    report_path(out, device)  # a bad --out is said before any probe runs
    target, prof = _target(device, entitlement=entitlement, probe=True)
    d = write_report(target, device, out, device_class, prof)
    if json_out:
        emit_json(d)
    else:
        for line in d["answers"]:
            console.print(line, soft_wrap=True, markup=False)
        console.print(f"report: {d['html']} (and {Path(d['markdown']).name})", soft_wrap=True, markup=False)


@app.command()
@guarded
def calibrate(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Calibrate on this GGUF instead of fitcheck's synthetic pair."),
    quick: bool = typer.Option(False, "--quick", help="Shorter runs (pp128, tg64, 3 repetitions a round; rounds until each model settles, about 40 s)."),
    force: bool = typer.Option(False, "--force", help="Run even when the memory estimate says it would not fit with margin."),
    from_llama_bench: Optional[str] = typer.Option(None, "--from-llama-bench", help="Calibrate from llama-bench JSON output instead of running."),
    llama_bench_out: Optional[str] = typer.Option(None, "--llama-bench-out", help="Also write the runs as llama-bench JSON records."),
    check: Optional[str] = typer.Option(None, "--check", help="Predict this GGUF's speed and memory, run it, print predicted vs measured (stores nothing)."),
    store_anyway: bool = typer.Option(False, "--store-anyway", help="Store the calibration even if it misses its own runs by more than 10% (a machine that stays busy); it is marked so and every answer says so."),
    rpc: Optional[str] = typer.Option(None, "--rpc", help="HOST:PORT,...: live rpc-servers (llama.cpp's RPC backend): run a short real split over them and fit the link's rate and round trip (`estimate --link calibrated` uses it)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Run llama.cpp for real on this device and calibrate every later forecast with it."""
    if rpc:
        _calibrate_rpc(rpc, json_out)
        return
    if check:
        from fitcheck.calibration.calibrate import check as run_check
        from fitcheck.views.render import check_view

        with err_console.status("running llama.cpp ..."):
            d = run_check(_profile_or_probe(), check, quick)
        show(d, json_out, check_view)
        return
    import json as _json

    from fitcheck.device import profile as prof_mod
    from fitcheck.calibration.calibrate import CalibrationError, calibrate as run_calibration, to_llama_bench
    from fitcheck.calibration.calibrate import from_llama_bench as calibration_from_llama_bench
    from fitcheck.jsonio import write_json_atomic
    from fitcheck.views.render import calibration_view

    prof = _profile_or_probe()
    if from_llama_bench:
        try:
            records = _json.loads(open(from_llama_bench).read())
        except (OSError, ValueError) as e:
            raise CalibrationError(f"{from_llama_bench}: cannot read llama-bench JSON: {e}") from None
        cal = calibration_from_llama_bench(records, prof, store_anyway)
    else:
        from fitcheck.calibration.calibrate import MissedOwnRun

        try:
            with err_console.status("calibrating ...") as status:
                cal = run_calibration(prof, model=model, quick=quick, force=force, store_anyway=store_anyway,
                                      on_step=lambda msg: status.update(f"calibrating: {msg}"))
        except MissedOwnRun as e:
            if llama_bench_out and e.runs:  # what was measured is kept: `--from-llama-bench` can fit it again
                write_json_atomic(llama_bench_out, to_llama_bench(e), "llama-bench JSON", CalibrationError, shared=True)
                raise CalibrationError(f"{e} (the runs are in {llama_bench_out})") from None
            raise
    prof["calibration"] = cal.to_dict()
    prof_mod.save(prof)  # atomic: on any failure above the saved profile is untouched
    if llama_bench_out:
        write_json_atomic(llama_bench_out, to_llama_bench(cal), "llama-bench JSON", CalibrationError, shared=True)
    if json_out:
        emit_json({**cal.to_dict(), "llama_bench": to_llama_bench(cal)})
    else:
        calibration_view(console, cal.to_dict())
    for n in cal.notes:
        warn(n, "note")


def _calibrate_rpc(endpoints: str, json_out: bool) -> None:
    from fitcheck.calibration.rpc_fit import calibrate_rpc
    from fitcheck.device import profile as prof_mod

    prof = _profile_or_probe()
    with err_console.status("calibrating the RPC link ...") as status:
        section = calibrate_rpc(prof, endpoints, say=lambda msg: status.update(f"calibrating the RPC link: {msg}"))
    prof["rpc"] = section
    prof_mod.save(prof)  # atomic: a failure above leaves the saved profile (and an earlier link) as it was
    if json_out:
        emit_json(section)
        return
    link = section["link"]
    console.print(f"RPC link over {', '.join(s['endpoint'] for s in section['servers'])}: {link['gbit_s']:.3f} Gbit/s, "
                  f"{link['rtt_ms']:.2f} ms round trip ({link['source']})", highlight=False, markup=False, soft_wrap=True)
    for r in section["runs"]:
        console.print(f"  {r['run']}: decode {r['decode_tps']:.1f} t/s (fit {r['decode_error']:+.1%}), prefill "
                      f"{r['prefill_tps']:.1f} t/s (fit {r['prefill_error']:+.1%})", highlight=False, markup=False)
    console.print("stored: `fitcheck estimate ... --link calibrated` uses it", highlight=False, markup=False)


@app.command("serve-capacity")
@guarded
def serve_capacity_cmd(
    model: str = typer.Option(..., "--model", "-m", help="As for `estimate`: catalog id, size alias, GGUF path or URL."),
    quant: Optional[str] = typer.Option(None, "--quant", "-q", help="Quantization for catalog models (default Q4_K_M)."),
    device: str = DEVICE_OPT,
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context each user has (tokens). [default: 4096, or the runtime's]"),
    min_tps: float = typer.Option(5.0, "--min-tps", help="Decode speed each user must get (tokens/s)."),
    max_users: int = typer.Option(64, "--max-users", help="The most users to try (1, 2, 4 ... this)."),
    runtime: Optional[str] = RUNTIME_OPT,
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type for K and V: f16, q8_0, q4_0 ..."),
    flash_attn: Optional[bool] = typer.Option(None, "--flash-attn/--no-flash-attn", help="Flash attention. [default: off, or the runtime's]"),
    memory_gb: Optional[float] = MEMORY_GB_OPT,
    bandwidth_gbs: Optional[float] = BANDWIDTH_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """How many people can use this model on this device at once, at what speed each?"""
    from fitcheck.runtimes import runtime_settings
    from fitcheck.serve import serve_capacity
    from fitcheck.views.render import serve_view

    s, _, _ = runtime_settings(runtime, {"n_ctx": ctx, "flash_attn": flash_attn}, type_k=kv_type.lower(),
                               type_v=kv_type.lower())
    target, _ = _target(device, memory_gb=memory_gb, bandwidth_gbps=bandwidth_gbs)
    show(serve_capacity(model, target, s, min_tps, quant, max_users), json_out, serve_view)


@app.command()
@guarded
def backtest(
    csv_path: str = typer.Argument(..., metavar="CSV", help="Measurements in the schema of published_benchmarks_dev.csv or phone_llm_results_dev.csv."),
    lofo: bool = typer.Option(False, "--lofo", help="Also refit each backend class on this file without one device family (one model for a single phone) at a time and print the held-out errors."),
    json_out: bool = JSON_OPT,
) -> None:
    """Predict every row of a CSV of published measurements and print the errors, per category and per backend class."""
    from fitcheck.backtest import backtest as run_backtest, held_out
    from fitcheck.views.render import backtest_view

    from fitcheck.split_backtest import backtest_splits, is_split_file

    if is_split_file(csv_path):  # published split runs: the placement model, MAPE per kind of split
        d = backtest_splits(csv_path)
        show(d, json_out, backtest_view)
        if d["overall"]["n"] == 0:
            raise FitcheckError(f"{csv_path}: no row could be evaluated ({d['overall']['unresolved']} unresolved)")
        return
    d = run_backtest(csv_path)
    if lofo:
        d["held_out"] = held_out(csv_path)
    show(d, json_out, backtest_view)
    if d["overall"]["n"] == 0:
        raise FitcheckError(f"{csv_path}: no row could be evaluated ({d['overall']['unresolved']} unresolved)")


@app.command()
@guarded
def refit(
    write: bool = typer.Option(False, "--write", help="Store the fitted values in device_db/speed_params.json (a development checkout)."),
    only: str = typer.Option("cpu,vulkan,opencl,hexagon,metal,cuda", "--only", help="Comma-separated classes to fit (the CPU class first: the phone GPU/NPU classes use it)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Refit the backend classes' speed parameters on the development data (device_db/*_dev.csv) and print their errors."""
    from fitcheck.calibration.class_fit import CLASSES
    from fitcheck.refit import refit as run_refit, write_classes

    wanted = tuple(c.strip() for c in only.split(",") if c.strip())
    bad = [c for c in wanted if c not in CLASSES]
    if bad or not wanted:
        raise UsageError(f"--only takes classes among {', '.join(CLASSES)}; got {only!r}")
    lines: list[str] = []
    fitted = run_refit(wanted, say=(lines.append if json_out else lambda s: console.print(s, markup=False, highlight=False)))
    path = write_classes(fitted) if write and fitted else None
    if json_out:
        emit_json({"classes": fitted, "written": path})
    elif path:
        console.print(f"wrote {path}", markup=False)


def main(argv: list[str] | None = None) -> int:
    """The console script: usage errors are one line too (click's own are boxes), exit 2."""
    try:  # typer >= 0.24 carries its own copy of click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        from click import exceptions as cx

    from fitcheck.interrupts import signals_raise

    try:
        with signals_raise():  # SIGTERM/SIGHUP unwind as SIGINT does: children killed, temp files gone
            rc = app(args=argv, standalone_mode=False, prog_name="fitcheck")
    except Interrupted as e:  # arrived outside a command's own guard (parsing, a view)
        say_error(str(e))
        rc = 128 + e.signum
    except KeyboardInterrupt:
        say_error("interrupted (SIGINT)")
        rc = 130
    except cx.UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        err_console.print(f"fitcheck: error: {' '.join(e.format_message().split())}{where}", markup=False,
                          highlight=False, soft_wrap=True)
        rc = 2
    rc = rc if isinstance(rc, int) else 0
    if argv is None:
        sys.exit(rc)
    return rc
