"""When a model does not fit: it pages its weights from storage, or it is killed. Pure: no I/O.

llama.cpp maps the GGUF read-only (src/llama-mmap.cpp, llama_mmap) and a CPU
backend computes straight from the mapping (the CPU_Mapped buffer in its
load log), so the weights are clean file pages. When the memory an app may
use is below the model, the OS drops those pages and the next access faults
them in again from storage: the model runs, at storage speed. Everything else
(KV cache, compute buffer, logits, the runtime, and weights llama.cpp copies
into its CPU_REPACK buffer for faster kernels) is anonymous memory: with no
swap it must fit, or the process is killed. Weights on a GPU backend, and
runtimes that read the file instead of mapping it, cannot page either.

What is read again per decoded token. A dense model reads all its weights
every token in the same order: a scan larger than the cache. A pure LRU keeps
nothing useful then; Linux's active/inactive lists protect part of the scan
once the cache holds most of it. Measured here (benchmarks/paging_vs_llama.py,
bytes read from the block device per token): all weights re-read with the
cache at 0.35 and 0.7 of the weights, 0.43 of them at 0.92; later, from decode
times, all of a Q8_0 model and half of a Q4_0 one at 0.87. Block-device bytes
at that share (decode of 40 vs 8 tokens): the 0.86 GB Q8_0 model re-read 0.82
of its weights per token at 1.9 GB/s, the 0.46 GB Q4_0 model only 0.16, but in
scattered faults at 0.55 GB/s, so its token still took 0.43 of a full
re-read's time. At 0.6 both re-read 0.9-1.0 at 1.7-1.95 GB/s. The knee depends
on more than the share (the model's size, how the cached part is scattered);
the time share falls linearly from 1 at RETAIN_FROM of the weights to 0 when
all fit, through the middle of those. An MoE model
reads its routed experts in routing order, not file order, with readahead
pulling each one's neighbours in: storage bytes per token follow
expert_reread_share of the cache left for experts, at the scattered read
rate the probe measures. Prefill reads the weights once per ubatch pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from fitcheck.estimator.memory import MemoryEstimate
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import SpeedEstimate, is_expert, looked_up
from fitcheck.model.model_spec import ModelSpec


@dataclass(frozen=True)
class PagingRule:
    """Whether a device's OS drops an app's clean mapped file pages instead of killing it, and from what storage."""

    evicts_mapped_files: bool
    os_rule: str  # the rule, with its source
    storage_read_gbps: float | None = None  # read bandwidth under page faults (probed) or sequential (database)
    storage_source: str = ""
    random_read_gbps: float | None = None  # scattered 4 MiB re-reads (MoE experts); None: as sequential
    repacked_types: frozenset[str] = frozenset()  # GGML types llama.cpp's CPU backend copies into CPU_REPACK here
    repack_source: str = ""

    def without_repacking(self) -> "PagingRule":
        """llama.cpp run with use_extra_bufts=false: every weight is used from the mapping."""
        return replace(self, repacked_types=frozenset(), repack_source="")


@dataclass(frozen=True)
class PagingEstimate:
    regime: str  # pages | killed
    reason: str
    pinned_bytes: int  # what must stay in memory
    pageable_bytes: int  # mapped weights the OS may drop
    cache_bytes: int  # memory left for weight pages
    reread_token_bytes: int | None  # read again from storage per decoded token
    reread_pass_bytes: int | None  # ... per prefill ubatch pass
    storage_read_gbps: float | None
    storage_source: str = ""
    scattered: bool = False  # the per-token re-reads are routed experts, at the random-read rate
    random_read_gbps: float | None = None
    uncertainty: float = 0.0  # relative, of the paged rates: storage drift, and the knee when part of a scan stays

    def to_dict(self) -> dict:
        return asdict(self)


def pageable_tensors(spec: ModelSpec, repacked: frozenset[str]):
    """Tensors used from the mapping (not copied into repacked buffers)."""
    return [t for t in spec.loaded_tensors if t.ggml_type.upper() not in repacked]


def _hot_and_experts(spec: ModelSpec, repacked: frozenset[str]) -> tuple[int, int]:
    """(bytes of mapped tensors read whole every token, bytes of mapped routed-expert tensors)."""
    rows, hot, experts = looked_up(spec), 0, 0
    for t in pageable_tensors(spec, repacked):
        if t.name in rows:
            continue  # one row per token: stays cached or costs a page
        if is_expert(t.name) and spec.n_expert:
            experts += t.n_bytes
        else:
            hot += t.n_bytes
    return hot, experts


RETAIN_FROM = 0.82  # cache / scanned bytes below which a cyclic scan keeps nothing (measured here, Linux)


def reread_share(cache_share: float) -> float:
    """Share of a cyclically scanned set read again per pass, with the cache holding `cache_share` of it."""
    return min(1.0, max(0.0, (1 - cache_share) / (1 - RETAIN_FROM)))


EXPERT_RETAIN_FROM = 0.45  # share of the experts cached below which readahead thrashes through the whole model
EXPERT_RAMP = 1.25  # how fast the re-read falls above it


def expert_reread_share(cache_share: float) -> float:
    """Storage bytes per token, as a share of the model, for an MoE with `cache_share` of its experts cached.

    Measured here (benchmarks/paging_vs_llama.py, an 8-expert model with 2 used, 8 MiB readahead), in two sessions:
    block-device bytes per token 0.97 / 0.78 / 0.32 / 0.14 / 0.001 of the model at 0.29 / 0.55 / 0.71 / 0.82 / 0.93
    of the experts cached; later, from decode times at the probed scattered-read rate, 0.82 at 0.50 and 0.30 at
    0.78. Readahead around each routed expert pulls its neighbours in, so the cache thrashes long before it is
    small; a ramp from EXPERT_RETAIN_FROM to 1 raised to EXPERT_RAMP splits the two sessions (within 0.06 of each
    point above 0.5). The ramp's start depends on the readahead window against an expert's size (8 MiB against
    3 MiB here; phones read ahead 128-512 KiB): a fact of this machine, not yet of others. The exponent was 1.5
    until four benchmark runs at 0.81 of the experts cached all read slower than it said (+17 to +54 %, the
    re-read share a third higher than the ramp): 1.25.
    """
    return min(1.0, max(0.0, (1 - cache_share) / (1 - EXPERT_RETAIN_FROM))) ** EXPERT_RAMP


# how far a paged rate is off, measured (benchmarks/paging_vs_llama.py, 2-vCPU VM, virtio disk; six runs over
# three sessions): where every weight is read again per token, within ~35 % (the disk's re-read rate drifts
# +-30 % over minutes); at the knee, where part of the scan stays cached, up to 54 % either way
PAGED_UNCERTAINTY = 0.35
PAGED_KNEE_UNCERTAINTY = 0.6


def cannot_page(settings: RuntimeSettings, backend: str, rule: PagingRule | None) -> str | None:
    """Why nothing of this setup can page, or None when mapped CPU weights can."""
    if rule is None:
        return "no paging rule known for this device"
    if backend != "cpu" or settings.n_gpu_layers:
        return (f"on the {backend if backend != 'cpu' else 'GPU'} backend the weights sit in GPU buffers (wired by "
                "Metal, copied by CUDA/Vulkan/OpenCL), which the OS cannot drop and read again: an app that loads "
                "them like this is killed")
    if not settings.use_mmap:
        return "the runtime reads the weights into memory (no mmap), so they cannot be dropped"
    if not rule.evicts_mapped_files:
        return rule.os_rule
    return None


def assess(spec: ModelSpec, mem: MemoryEstimate, settings: RuntimeSettings, backend: str, usable_bytes: int,
           rule: PagingRule | None) -> PagingEstimate:
    """For a setup whose reserved total exceeds usable memory: does it page, and how much is read again?"""
    why = cannot_page(settings, backend, rule)
    repacked = rule.repacked_types if rule else frozenset()
    pageable = sum(t.n_bytes for t in pageable_tensors(spec, repacked)) if why is None else 0
    # the OS counts touched pages: the compute buffer's untouched reservation does not press on the cache; the mapped
    # pages repacked weights were read from are clean and can go, their copy cannot
    pinned = mem.resident_bytes - mem.repacked_bytes - pageable
    gbps = rule.storage_read_gbps if rule else None
    src = rule.storage_source if rule else ""
    if why is not None:
        return PagingEstimate("killed", why, pinned, 0, 0, None, None, gbps, src)
    if pinned >= usable_bytes:
        rep = spec.loaded_weights_bytes - pageable
        kinds = "/".join(sorted({t.ggml_type for t in spec.loaded_tensors if t.ggml_type.upper() in repacked}))
        extra = (f", and {rep / 1e9:.2f} GB of {kinds} weights llama.cpp repacked into its own buffers — "
                 "--no-repack to keep them mapped") if rep else ""
        return PagingEstimate("killed", f"even with every mapped weight left on storage it needs {pinned / 1e9:.2f} GB of "
                              f"{usable_bytes / 1e9:.2f} GB usable (KV cache, compute buffer, runtime{extra})",
                              pinned, pageable, 0, None, None, gbps, src)
    cache = usable_bytes - pinned
    hot, experts = _hot_and_experts(spec, repacked)
    scattered = bool(experts)  # experts are read in routing order, not file order
    if not experts:
        share = reread_share(cache / hot) if hot else 0.0
        per_token = int(hot * share)
    else:
        share = expert_reread_share((cache - hot) / experts)
        per_token = int((hot + experts) * share)
    u = PAGED_UNCERTAINTY if share >= 1 else PAGED_KNEE_UNCERTAINTY
    # one ubatch touches nearly every expert (each token routes to n_expert_used of them)
    touched = hot + experts
    per_pass = touched if touched > cache else 0
    if per_token < 0.005 * max(hot, 1):  # the reservation is over, what a token touches is not: nothing re-read
        reason = (f"llama.cpp reserves more than the {usable_bytes / 1e9:.2f} GB usable, but the weights a token reads "
                  f"fit in the {cache / 1e9:.2f} GB left after what must stay in memory: the OS keeps them and "
                  f"nothing is read again from storage — in-memory speed, with no headroom — {rule.os_rule}")
    else:
        reason = (f"the mapped weights ({pageable / 1e9:.2f} GB) exceed the {cache / 1e9:.2f} GB left after what must "
                  f"stay in memory ({pinned / 1e9:.2f} GB): the OS drops their pages and reads {per_token / 1e9:.2f} "
                  f"GB again from storage per token — {rule.os_rule}")
    return PagingEstimate("pages", reason, pinned, pageable, cache, per_token, per_pass, gbps, src, scattered,
                          rule.random_read_gbps, u)


def paged_speed(pg: PagingEstimate, in_memory: SpeedEstimate | None, n_prompt: int, n_ubatch: int) -> SpeedEstimate | None:
    """Decode and prefill with the re-reads added (page faults stall the thread that takes them)."""
    if pg.regime != "pages" or in_memory is None or not pg.storage_read_gbps:
        return None
    bps = pg.storage_read_gbps * 1e9
    rate = (pg.random_read_gbps or pg.storage_read_gbps) * 1e9 if pg.scattered else bps
    t_page = pg.reread_token_bytes / rate
    decode_s = 1 / in_memory.decode_tps + t_page  # a decode step waits on each fault: little compute to hide it
    prefill = None
    if in_memory.prefill_tps and n_prompt:
        passes = math.ceil(n_prompt / n_ubatch)
        prefill = n_prompt / (n_prompt / in_memory.prefill_tps + passes * pg.reread_pass_bytes / bps)
    ttft = n_prompt / prefill if prefill else None  # mapped lazily: loading is the first pass's faults
    return replace(in_memory, decode_tps=1 / decode_s, prefill_tps=prefill, ttft_s=ttft, load_s=None,
                   decode_breakdown_s={**in_memory.decode_breakdown_s, "paging": t_page})
