"""One evaluation: a model on a target device at given settings -> memory, verdict, speed. Pure: no I/O.

Every command (the main job, estimate, advise, forecast, scan, report) resolves
its device once into a `Target` (fitcheck.device.resolve) and calls
`evaluate` for each model and quantization it considers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from fitcheck.estimator.fit import TIGHT_MARGIN, FitResult, fit_verdict
from fitcheck.estimator.memory import MemoryEstimate, estimate_memory
from fitcheck.estimator.paging import PagingEstimate, PagingRule, assess, paged_speed
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import (AttnMode, BackendParams, DeviceSpeedSpec, SpeedEstimate, active_weights,
                                     estimate_speed)
from fitcheck.model.model_spec import ModelSpec

# Default decode target: a reading pace (about 4 words a second); the seed calls 0.71 t/s "almost unusable".
USABLE_TPS = 5.0
DEFAULT_PROMPT = 512  # prompt tokens behind prefill and TTFT figures


@dataclass(frozen=True)
class HostSide:
    """System RAM beside a discrete GPU, for partial offload (usable bytes; bandwidth when known)."""

    usable_bytes: int | None
    bw_gbps: float | None
    source: str


@dataclass(frozen=True)
class Alternatives:
    """Device-specific ways out the plain usable-memory figure cannot show."""

    entitlement_usable_bytes: int | None = None  # iOS/iPadOS app with the increased-memory-limit entitlement
    entitlement_rule: str = ""
    host: HostSide | None = None  # discrete GPUs: layers that do not fit in VRAM stay in system RAM


@dataclass(frozen=True)
class Target:
    """A device resolved once: usable memory with its rule, speed inputs with theirs."""

    label: str  # what a person reads: "this device (…)", "iPhone 15, 6 GB"
    usable_bytes: int
    memory_rule: str
    speed: DeviceSpeedSpec | None = None
    params: BackendParams | None = None
    calibrated: bool = False
    speed_note: str = ""  # where the speed inputs came from, or why there is no speed
    read_gbps: float | None = None  # probed read bandwidth (this device only)
    warnings: tuple[str, ...] = ()
    alternatives: Alternatives = Alternatives()
    basis: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # facts and sources for views
    # relative uncertainty of decode and prefill (0.15: the true rate is likely within /1.15 .. x1.15)
    uncertainty: tuple[float, float] = (0.3, 0.4)
    paging: PagingRule | None = None  # what happens when a model does not fit: paging from storage, or killed

    def without_repacking(self) -> "Target":
        """llama.cpp run with use_extra_bufts=false: every weight used from the mapping (it can page), and this
        machine's kernels at the rates its probe measured with repacking off."""
        speed = self.speed
        if speed is not None and speed.kernels is not None:
            speed = replace(speed, kernels=speed.kernels.without_repacking())
        return replace(self, speed=speed, paging=self.paging.without_repacking() if self.paging else None)

    def to_dict(self) -> dict[str, Any]:
        # the database's facts first: the speed inputs actually used (an override's bandwidth) win over them
        return {**self.basis, "label": self.label, "usable_bytes": self.usable_bytes, "memory_rule": self.memory_rule,
                "backend": self.speed.backend if self.speed else None,
                "bw_gbps": self.speed.bw_gbps if self.speed else None,
                "peak_tflops": self.speed.peak_tflops if self.speed else None,
                "peak_kind": self.speed.flops_kind if self.speed else None,
                "calibrated": self.calibrated, "speed_note": self.speed_note, "warnings": list(self.warnings),
                "speed_uncertainty": {"decode": round(self.uncertainty[0], 3), "prefill": round(self.uncertainty[1], 3)},
                "paging": {"evicts_mapped_files": self.paging.evicts_mapped_files, "rule": self.paging.os_rule,
                           "storage_read_gbps": self.paging.storage_read_gbps, "storage_source": self.paging.storage_source,
                           "repacked_types": sorted(self.paging.repacked_types),
                           "repack_source": self.paging.repack_source} if self.paging else None}


@dataclass(frozen=True)
class Evaluation:
    spec: ModelSpec
    memory: MemoryEstimate
    fit: FitResult
    speed: SpeedEstimate | None  # in memory; paged when it pages; None when it is killed
    uncertainty: tuple[float, float] = (0.3, 0.4)
    paging: PagingEstimate | None = None  # set when it does not fit in memory
    in_memory_speed: SpeedEstimate | None = None  # the rates had it fitted (trends across devices use these)

    @property
    def in_memory(self) -> bool:
        return self.fit.verdict in ("fits", "tight")

    @property
    def runs(self) -> bool:
        """In memory, or paging from storage (slowly)."""
        return self.fit.verdict != "killed"

    def meets(self, target_tps: float | None) -> bool:
        """Fits with headroom and, when a target is given, reaches it."""
        if self.fit.verdict != "fits":
            return False
        return target_tps is None or (self.speed is not None and self.speed.decode_tps >= target_tps)

    def row(self) -> dict[str, Any]:
        m, sp = self.memory, self.speed if self.runs else None
        return {"model": self.spec.name, "quant": self.spec.file_type,
                "params_b": round(self.spec.parameter_count / 1e9, 3),
                "bits_per_weight": round(self.spec.bits_per_weight, 3),
                "total_bytes": m.total_bytes, "resident_bytes": m.resident_bytes,
                "verdict": self.fit.verdict, "headroom_bytes": self.fit.headroom_bytes,
                "breakdown": {"weights_bytes": m.weights_bytes, "kv_bytes": m.kv_cache_bytes,
                              "recurrent_state_bytes": m.recurrent_state_bytes,
                              "compute_bytes": m.compute_bytes, "other_bytes": m.output_bytes + m.overhead_bytes},
                "decode_tps": sp.decode_tps if sp else None, "prefill_tps": sp.prefill_tps if sp else None,
                "decode_tps_range": rate_range(sp.decode_tps if sp else None, self.uncertainty[0]),
                "prefill_tps_range": rate_range(sp.prefill_tps if sp else None, self.uncertainty[1]),
                "ttft_s": sp.ttft_s if sp else None,
                "paging": self.paging.to_dict() if self.paging else None}


def evaluate(spec: ModelSpec, settings: RuntimeSettings, target: Target, n_prompt: int = DEFAULT_PROMPT,
             depth: int = 0, usable_bytes: int | None = None) -> Evaluation:
    """Memory llama.cpp reserves, the verdict against the target's usable memory, and the speed model's rates.

    `usable_bytes` overrides the target's (the iOS entitlement, a GPU's VRAM beside its host).
    """
    backend = target.speed.backend if target.speed else "cpu"
    repacked = target.paging.repacked_types if target.paging and backend == "cpu" else frozenset()
    mem = estimate_memory(spec, settings, n_prompt=n_prompt, repacked_types=repacked)
    fit = fit_verdict(mem.total_bytes, target.usable_bytes if usable_bytes is None else usable_bytes, TIGHT_MARGIN)
    sp = None
    if target.speed is not None and target.params is not None and spec.weights_bytes > 0:  # nothing to stream, no rate
        sp = estimate_speed(spec, target.speed, target.params, n_prompt=n_prompt, depth=depth, n_ubatch=settings.n_ubatch,
                            prompt_depth=depth, mode=AttnMode.of(settings))
    pg, sp_mem, u = None, sp, target.uncertainty
    if fit.verdict == "does_not_fit":
        pg = assess(spec, mem, settings, backend, fit.usable_bytes, target.paging)
        fit = replace(fit, verdict=pg.regime)
        sp = paged_speed(pg, sp, n_prompt, settings.n_ubatch)
        if sp is not None:  # the paged rates carry the storage's and the knee's uncertainty too
            u = tuple(math.hypot(x, pg.uncertainty) for x in u)
    return Evaluation(spec, mem, fit, sp, u, pg, sp_mem)


def rate_range(v: float | None, u: float) -> list[float] | None:
    """[low, high] for a rate with relative uncertainty u (symmetric in log: v/(1+u) .. v*(1+u))."""
    return None if v is None else [v / (1 + u), v * (1 + u)]


LONG_CONTEXT = 8192  # from this context on, an answer shows speed over the filled context, not one number


def depth_curve(spec: ModelSpec, settings: RuntimeSettings, target: Target, n_prompt: int = DEFAULT_PROMPT,
                depths: list[int] | None = None) -> dict[str, Any] | None:
    """Decode with 0, a quarter, half and all of the context filled (or `depths`), prefill of an n_prompt prompt
    on top of each, and the time to the first token of a prompt that fills the context. None without speed."""
    if target.speed is None or target.params is None or spec.weights_bytes <= 0:
        return None
    ctx = settings.n_ctx
    depths = sorted(set(depths if depths is not None else (0, ctx // 4, ctx // 2, ctx - n_prompt)))
    points = []
    for d in depths:
        sp = estimate_speed(spec, target.speed, target.params, n_prompt=n_prompt, depth=d, n_ubatch=settings.n_ubatch,
                            prompt_depth=d, mode=AttnMode.of(settings))
        points.append({"depth": d, "decode_tps": sp.decode_tps, "prefill_tps": sp.prefill_tps,
                       "kv_bytes_per_token": sp.bytes_per_token - active_weights(spec)[0]})
    full = estimate_speed(spec, target.speed, target.params, n_prompt=ctx, depth=0, n_ubatch=settings.n_ubatch,
                          mode=AttnMode.of(settings))
    return {"n_prompt": n_prompt, "points": points, "full_prompt_tokens": ctx,
            "full_prompt_ttft_s": full.ttft_s if full.ttft_s is not None else None,
            "full_prompt_prefill_tps": full.prefill_tps}
