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
    dec = speed(run.spec, pl, s, n_prompt=0, depth=run.n_gen // 2, fetch_logits=False).decode_tps
    pp = speed(run.spec, pl, s, n_prompt=run.n_prompt, depth=0, fetch_logits=False).prefill_tps
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
