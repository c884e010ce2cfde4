"""Split runs over RPC servers on this machine predicted by the placement model, and the link terms fitted on them.

A run here is llama-bench (pp then tg, from an empty cache) with this machine's CPU as the host and every server
running the same CPU backend, reached through the link. The servers get the kernel rates the probe measured with
repacking off: an RPC server allocates its device's default buffer type, so llama.cpp's CPU_REPACK layouts (an
extra buffer type of the local CPU only, ggml-cpu/repack.cpp) are not used there.

`fit_links` fits the two link terms, the effective rate and the round trip, by bounded least squares on the log
errors of the decode and prefill rates (scipy), everything else as probed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from fitcheck.estimator.placement import Link, SplitOptions, Unit, memory, place, speed
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import CpuKernelParams, DeviceSpeedSpec
from fitcheck.model.model_spec import ModelSpec


@dataclass(frozen=True)
class Run:
    spec: ModelSpec
    n_gpu_layers: int
    tensor_split: str
    n_prompt: int = 128
    n_gen: int = 32
    n_servers: int = 2

    def label(self) -> str:
        return f"{self.spec.name} -ngl {self.n_gpu_layers} -ts {self.tensor_split}"

    def settings(self) -> RuntimeSettings:
        # llama-bench: n_ctx = prompt + generated tokens, the batch (and ubatch) the prompt's length
        ub = min(self.n_prompt, 512)
        return RuntimeSettings(n_ctx=self.n_prompt + self.n_gen, n_batch=ub, n_ubatch=ub, runtime="llama.cpp")


@dataclass(frozen=True)
class Predicted:
    decode_tps: float
    prefill_tps: float
    memory: tuple  # placement.UnitMemory per unit, the host first


def units_here(dev: DeviceSpeedSpec, kp: CpuKernelParams, link: Link, n_servers: int, usable_bytes: int = 1 << 40):
    server = replace(dev, kernels=dev.kernels.without_repacking()) if dev.kernels else dev
    host = Unit("this machine", "host", dev, kp, usable_bytes)
    return (host,) + tuple(Unit(f"rpc{k}", "rpc", server, kp, usable_bytes, link) for k in range(n_servers))


def predict_run(run: Run, dev: DeviceSpeedSpec, kp: CpuKernelParams, gbit_s: float, rtt_ms: float) -> Predicted:
    link = Link("lab link", gbit_s, rtt_ms / 1e3, "network")
    units = units_here(dev, kp, link, run.n_servers)
    shares = tuple(float(x) for x in run.tensor_split.split("/")) if run.tensor_split else ()
    pl = place(run.spec, units, SplitOptions(n_gpu_layers=run.n_gpu_layers, tensor_split=shares))
    s = run.settings()
    dec = speed(run.spec, pl, s, n_prompt=0, depth=run.n_gen // 2).decode_tps
    pp = speed(run.spec, pl, s, n_prompt=run.n_prompt, depth=0).prefill_tps
    return Predicted(dec, pp, memory(run.spec, s, pl))


def fit_links(rows, dev: DeviceSpeedSpec, kp: CpuKernelParams) -> Link:
    """The link's effective rate (Gbit/s) and round trip that best explain [(Run, prompt_tps, generation_tps)]."""
    import numpy as np
    from scipy.optimize import least_squares

    def resid(x):
        gbit, rtt = math.exp(x[0]), math.exp(x[1])
        out = []
        for run, pp, tg in rows:
            p = predict_run(run, dev, kp, gbit, rtt)
            out += [math.log(p.decode_tps / tg)] + ([math.log(p.prefill_tps / pp)] if pp else [])
        return np.array(out)

    sol = least_squares(resid, x0=[0.0, 0.0], bounds=([math.log(1e-3), math.log(1e-3)], [math.log(400), math.log(500)]))
    return Link("calibrated", float(math.exp(sol.x[0])), float(math.exp(sol.x[1])) / 1e3, "network",
                f"fitted on {len(rows)} split runs (rms log error {math.sqrt(float((sol.fun ** 2).mean())):.3f})")


REPRODUCE_WITHIN = 0.10  # a link fit that misses its own split runs' decode by more is not stored
CALIBRATION_MODEL = dict(n_layer=12, n_embd=2048, n_head=16, n_head_kv=4, n_ff=5632, n_vocab=32000, weight_type="Q4_0",
                         seed=61, name="rpc-calib")  # 0.38 GB: a few seconds a run, split three ways


def calibrate_rpc(profile: dict, endpoints: str, say=lambda s: None) -> dict:
    """`fitcheck calibrate --rpc HOST:PORT,...`: a short real split over live servers, the link terms fitted.

    Runs llama-bench on a synthetic model three ways: on this machine alone (its kernel factors, as `calibrate`
    fits them), all layers on the servers, and this machine's CPU with the servers. The servers are taken to run
    this machine's CPU backend (the lab, or identical machines). Returns the profile section to store; raises
    CalibrationError (nothing stored) when a server is unreachable, dies, or the fit misses its own runs."""
    import datetime as dt

    from fitcheck.calibration.calibrate import ensure_model
    from fitcheck.calibration.kernels import fit_kernel_factors
    from fitcheck.calibration.rpc import bench, parse_endpoints, probe_server
    from fitcheck.calibration.synth import SynthModel, spec_of
    from fitcheck.device.device_speed import from_profile, kernel_params
    from fitcheck.errors import CalibrationError
    from fitcheck.paths import cache_dir

    eps = parse_endpoints(endpoints)
    servers = [probe_server(h, p) for h, p in eps]
    dev, basis = from_profile(profile)
    if dev.kernels is None:
        raise CalibrationError("the profile has no llama.cpp kernel rates: run `fitcheck probe` first")
    synth = SynthModel(**CALIBRATION_MODEL)
    spec = spec_of(synth)
    need = spec.weights_bytes / len(servers) * 1.5
    short = [s.endpoint for s in servers if s.free_bytes < need]
    if short:
        raise CalibrationError(f"rpc server {', '.join(short)} reports less than {need / 1e9:.2f} GB free for its share")
    path = ensure_model(synth, cache_dir() / "rpc")
    kp = kernel_params((basis.get("calibration") or {}).get("params", {}).get("kernel_model"))[0]
    t = dev.kernels.threads
    eps_text = [f"{h}:{p}" for h, p in eps]
    say("this machine alone")
    alone = bench(path, [], n_gpu_layers=0, threads=t)
    kp = fit_kernel_factors([(spec, alone.prompt_tps, alone.generation_tps, 128, 16)], dev, kp)[0]
    n = spec.n_layer
    splits = ((n + 1, "/".join("1" for _ in eps)), (2 * n // 3 + 1, "/".join("1" for _ in eps)))
    rows = []
    for ngl, ts in splits:
        say(f"split -ngl {ngl} -ts {ts} over {len(eps)} server{'s' if len(eps) > 1 else ''}")
        r = bench(path, eps_text, n_gpu_layers=ngl, tensor_split=ts, threads=t)
        rows.append((Run(spec, ngl, ts, n_servers=len(eps)), r.prompt_tps, r.generation_tps))
    link = fit_links(rows, dev, kp)
    errors = []
    for run, pp, tg in rows:
        p = predict_run(run, dev, kp, link.gbit_s, link.rtt_s * 1e3)
        errors.append({"run": run.label(), "decode_error": round(p.decode_tps / tg - 1, 4),
                       "prefill_error": round(p.prefill_tps / pp - 1, 4), "decode_tps": tg, "prefill_tps": pp})
    worst = max(abs(e["decode_error"]) for e in errors)
    if worst > REPRODUCE_WITHIN:
        raise CalibrationError(f"the fitted link misses its own split runs' decode by {worst:.0%} (the servers may not "
                               "run this machine's CPU, or the network was busy); nothing stored: try again")
    return {"created": dt.datetime.now().isoformat(timespec="seconds"),
            "servers": [{"endpoint": s.endpoint, "protocol": s.version, "free_bytes": s.free_bytes,
                         "total_bytes": sum(t for _, t in s.devices)} for s in servers],
            "link": {"gbit_s": round(link.gbit_s, 5), "rtt_ms": round(link.rtt_s * 1e3, 4), "source": link.source},
            "runs": errors, "model": spec.name}
