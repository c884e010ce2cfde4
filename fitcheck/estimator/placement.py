"""A model split over devices: which weights and KV cells live where, the memory on each, the speed with the links.

Pure: no I/O. The rules follow llama.cpp as vendored by llama-cpp-python 0.3.36:

- Devices: RPC servers go first in the device list (src/llama.cpp, llama_model_load_from_file: "add RPC servers at
  the front of the list to minimize network transfers"), then the local GPUs; the CPU is the host, not a device.
- Layers (src/llama-model.cpp, load_tensors): the output head counts as layer n_layer, so i_gpu_start =
  max(n_layer + 1 - n_gpu_layers, 0) and act_gpu_layers = min(n_gpu_layers, n_layer + 1); layer il runs on the host
  below i_gpu_start, else on the device whose cumulative tensor-split share first exceeds (il - i_gpu_start) /
  act_gpu_layers (std::upper_bound); the default split is by each device's free memory. The input embeddings stay
  on the host (dev_input); the output head and norm go where "layer" n_layer does (dev_output): -ngl 1 offloads the
  head alone. Tied embeddings are loaded twice (TENSOR_DUPLICATED): on the host for the lookup, on the output
  device for the head.
- Overrides (common/arg.cpp): --override-tensor REGEX=BUFT, first match wins; --cpu-moe adds
  "\\.ffn_(up|down|gate)_exps" and --n-cpu-moe N adds "blk\\.i\\.ffn_(up|down|gate)_exps" for i < N, to the CPU.
- KV cache (src/llama-kv-cache.cpp): each layer's cells on its layer's device, on the host with --no-kv-offload
  (offload_kqv = false), where attention then runs.
- Speed: a token visits the devices in graph order and every change of backend is a graph split
  (ggml/src/ggml-backend.cpp, ggml_backend_sched_split_graph) whose input is copied across: the hidden state,
  n_embd f32 per token, and from the device with the head the logits (n_vocab f32 per output token). Each device's
  own time is the speed terms of its share (fitcheck.estimator.terms, the same terms a single device is estimated
  with). An RPC server (ggml/src/ggml-rpc/ggml-rpc.cpp) is driven by one dispatcher thread per server: set_tensor
  and graph_compute/graph_recompute are sent without waiting (send_async), and reading its output back
  (get_tensor, or the scheduler's copy to the next backend) waits for the reply: one round trip per visit, plus
  the bytes each way at the link's rate; each visit also sends the split's other inputs (positions, the KQ mask:
  n_kv x tokens, f32, f16 with flash attention), and each prompt pass more (RPC_PASS_BYTES_PER_LAYER).
- Prompt products of weights left in host memory run on a CUDA/Vulkan GPU when the batch has >= 32 tokens
  (ggml-cuda.cu ggml_backend_cuda_device_offload_op; ggml_backend_sched's op offload): those weights cross the
  PCIe link once per ubatch.
- --split-mode row/tensor: every matrix is split by rows across the local GPUs, which stream their shares at once;
  each layer then joins the partial results (two synchronisations a layer); KV and the rest stay on the main GPU.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field, replace

from fitcheck.errors import UsageError
from fitcheck.estimator.fit import TIGHT_MARGIN, FitResult, fit_verdict
from fitcheck.estimator.memory import (F32, KV_PAD, ROWS_OUT, compute_phases, kv_cache_bytes, kv_cells, layer_of,
                                       overhead_bytes, pad)
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import (AttnMode, BackendParams, CpuKernelParams, DeviceSpeedSpec, PREFILL_CHUNK, Share,
                                      class_rates, cpu_side_seconds, device_flops, device_work, kernel_rates,
                                      output_tensor_name)
from fitcheck.estimator.terms import decode_terms, prefill_seconds, products_seconds
from fitcheck.model.model_spec import ModelSpec

EXPERT_RE = r"\.ffn_(up|down|gate)_exps"  # common/arg.cpp LLM_FFN_EXPS_REGEX
# What an RPC server is sent beyond the hidden state and the KQ mask, counted on the wire here (bytes through the
# lab's relay, llama-bench over one server, benchmarks/rpc_split.py's models): nothing per decoded token (the
# scheduler's graph is recomputed in place: ggml-rpc.cpp graph_recompute), about 44 KB per layer per prompt pass
# (1.71 MB and 1.18 MB per pp128 pass of two 12-layer models, less their hidden states and masks: 0.53 MB both).
RPC_PASS_BYTES_PER_LAYER = 44_000
OFFLOAD_MIN_BATCH = 32  # ggml-cuda.cu: ops with a batch of at least 32 run on the GPU with their weights copied over
SPLIT_MODES = ("layer", "row", "tensor", "none")


@dataclass(frozen=True)
class Link:
    """A device's link to the host: effective rate (Gbit/s) and round trip (s)."""

    name: str
    gbit_s: float
    rtt_s: float
    kind: str = "network"  # network | pcie | unified
    source: str = ""

    def seconds(self, nbytes: float, round_trips: float = 0.0) -> float:
        return round_trips * self.rtt_s + (nbytes * 8 / (self.gbit_s * 1e9) if self.gbit_s else 0.0)


@dataclass(frozen=True)
class Unit:
    """One device of a split: the host (runs llama.cpp, holds what is left on the CPU), a local GPU, an RPC server."""

    name: str
    role: str  # host | gpu | rpc
    speed: DeviceSpeedSpec | None
    params: BackendParams | CpuKernelParams | None
    usable_bytes: int
    link: Link | None = None  # to the host (None for the host)
    pool: str = ""  # units that share one memory (a Mac's CPU and GPU) name the same pool
    offload_op: bool = False  # runs the host's big-batch prompt products (CUDA, Vulkan)


@dataclass(frozen=True)
class SplitOptions:
    """llama.cpp's own options, by their names."""

    n_gpu_layers: int | None = None  # -ngl; None: every layer and the output head
    n_cpu_moe: int = 0  # --n-cpu-moe
    cpu_moe: bool = False  # --cpu-moe
    overrides: tuple[tuple[str, str], ...] = ()  # -ot REGEX=DEVICE (a unit's name, or CPU)
    no_kv_offload: bool = False  # -nkvo
    tensor_split: tuple[float, ...] = ()  # -ts, one share per device in llama.cpp's order
    split_mode: str = "layer"  # -sm
    main_gpu: int = 0  # -mg

    def __post_init__(self):
        if self.split_mode not in SPLIT_MODES:
            raise UsageError(f"--split-mode must be one of {', '.join(SPLIT_MODES)}, got {self.split_mode!r}")
        if self.n_gpu_layers is not None and self.n_gpu_layers < 0:
            raise UsageError(f"--gpu-layers must be >= 0, got {self.n_gpu_layers}")
        if self.n_cpu_moe < 0:
            raise UsageError(f"--n-cpu-moe must be >= 0, got {self.n_cpu_moe}")
        if any(not math.isfinite(x) or x < 0 for x in self.tensor_split) or (self.tensor_split and not sum(self.tensor_split)):
            raise UsageError(f"--tensor-split takes non-negative shares that do not all add to 0, got {self.tensor_split}")


@dataclass(frozen=True)
class Placement:
    units: tuple[Unit, ...]  # host first
    order: tuple[int, ...]  # the devices in llama.cpp's order (RPC servers first)
    where: dict[str, int]  # tensor name -> unit
    layer_at: tuple[int, ...]  # the unit running each layer's own ops
    kv_at: tuple[int, ...]  # the unit holding each layer's KV cache (and running its attention)
    output_at: int
    gpu_layers: int  # llama.cpp's act_gpu_layers
    row_shares: tuple[float, ...] = ()  # split-mode row/tensor: each device's share of every matrix
    host_copies: frozenset[str] = frozenset()  # tensors also loaded on the host (tied embeddings)
    notes: tuple[str, ...] = ()


def _device_order(units: tuple[Unit, ...]) -> tuple[int, ...]:
    rpc = [i for i, u in enumerate(units) if u.role == "rpc"]
    return tuple(rpc + [i for i, u in enumerate(units) if u.role == "gpu"])


def _splits(units, order, shares: tuple[float, ...]) -> list[float]:
    if shares and len(shares) != len(order):
        raise UsageError(f"--tensor-split has {len(shares)} shares for {len(order)} devices "
                         f"({', '.join(units[i].name for i in order)}, in llama.cpp's order: RPC servers first)")
    w = list(shares) if shares else [float(max(units[i].usable_bytes, 1)) for i in order]
    total, acc, out = sum(w), 0.0, []
    for x in w:
        acc += x / total
        out.append(acc)
    return out


def _target(units, name: str) -> int:
    """The unit an override names: CPU (the host), a unit's name, or llama.cpp's device names (CUDA0, RPC1 ...)."""
    key = name.strip().lower()
    if key in ("cpu", "host"):
        return 0
    for i, u in enumerate(units):
        if u.name.lower() == key:
            return i
    m = re.fullmatch(r"(cuda|rocm|vulkan|metal|rpc|gpu)(\d+)", key)
    if m:
        kind = "rpc" if m.group(1) == "rpc" else "gpu"
        of = [i for i, u in enumerate(units) if u.role == kind]
        if int(m.group(2)) < len(of):
            return of[int(m.group(2))]
    raise UsageError(f"--override-tensor names {name!r}, which is none of the devices "
                     f"(CPU, {', '.join(u.name for u in units[1:]) or 'no others'})")


def place(spec: ModelSpec, units: tuple[Unit, ...], opts: SplitOptions) -> Placement:
    """Where llama.cpp puts each tensor and KV cell with these options (units[0] is the host)."""
    if not units or units[0].role != "host":
        raise UsageError("a split needs the host first")
    order = _device_order(units)
    n = spec.n_layer
    notes: list[str] = []
    ngl = (n + 1 if opts.n_gpu_layers is None else opts.n_gpu_layers) if order else 0
    if opts.n_gpu_layers and not order:
        notes.append(f"--gpu-layers {opts.n_gpu_layers}: no device beside the host, every layer stays on its CPU")
    act = min(ngl, n + 1)
    start = max(n + 1 - ngl, 0)
    row = opts.split_mode in ("row", "tensor") and len(order) > 1
    if row and any(units[i].role == "rpc" for i in order):
        raise UsageError(f"--split-mode {opts.split_mode} splits matrices across local GPUs; RPC servers take whole layers")
    splits = _splits(units, order, opts.tensor_split) if order else []
    if opts.split_mode == "none" or row:  # one device holds the layers (row: the others a share of each matrix)
        main = order[min(opts.main_gpu, len(order) - 1)] if order else 0
        dev_of = lambda il: 0 if il < start or il - start >= act else main  # noqa: E731
    else:
        def dev_of(il: int) -> int:
            if il < start or il - start >= act:
                return 0
            return order[min(bisect.bisect_right(splits, (il - start) / act), len(order) - 1)]
    layer_at = tuple(dev_of(il) for il in range(n))
    output_at = dev_of(n)
    out_name = output_tensor_name(spec)
    tied = out_name == "token_embd.weight"
    rules = [(re.compile(p), _target(units, d), f"-ot {p}={d}") for p, d in opts.overrides]
    if opts.cpu_moe:
        rules.append((re.compile(EXPERT_RE), 0, "--cpu-moe"))
    for il in range(min(opts.n_cpu_moe, n)):
        rules.append((re.compile(rf"blk\.{il}{EXPERT_RE}"), 0, "--n-cpu-moe"))
    used = [False] * len(rules)
    where: dict[str, int] = {}
    for t in spec.loaded_tensors:
        il = layer_of(t.name)
        if il is not None and il < n:
            u = layer_at[il]
        elif t.name == out_name and tied:
            u = output_at
        elif t.name.startswith(("token_embd", "per_layer_token_embd")):
            u = 0
        else:
            u = output_at
        for k, (rx, dest, _) in enumerate(rules):
            if rx.search(t.name):
                u, used[k] = dest, True
                break
        where[t.name] = u
    for (rx, _, how), hit in zip(rules, used):
        if not hit and how != "--n-cpu-moe":
            raise UsageError(f"{how}: the pattern matches no tensor of {spec.name}")
    if (opts.cpu_moe or opts.n_cpu_moe) and not spec.n_expert:
        notes.append(f"{spec.name} is dense: --cpu-moe / --n-cpu-moe move nothing")
    kv_at = tuple(0 if opts.no_kv_offload else layer_at[il] for il in range(n))
    shares = tuple(b - a for a, b in zip([0.0] + splits, splits)) if row else ()
    copies = frozenset({out_name}) if tied and output_at != 0 else frozenset()
    return Placement(units, order, where, layer_at, kv_at, output_at, act, shares, copies, tuple(notes))


# --------------------------------------------------------------------------------------------------------- memory

@dataclass(frozen=True)
class UnitMemory:
    name: str
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    other_bytes: int  # the host's logits buffer, runtime and vocabulary; a unit's recurrent state
    total_bytes: int
    usable_bytes: int
    fit: FitResult
    layers: int
    share_note: str = ""


def memory(spec: ModelSpec, s: RuntimeSettings, pl: Placement) -> tuple[UnitMemory, ...]:
    """What each unit of the split reserves: weights, KV cache, its compute buffer (the largest graph phase it runs,
    llama.cpp sizes one per backend), the host's logits, runtime and vocabulary. Units sharing a memory pool are
    judged together."""
    n = spec.n_layer
    phases = compute_phases(spec, s)
    state = spec.recurrent_state_bytes(s.n_seq)
    n_rec = max(sum(1 for il in range(n) if spec.is_recurrent(il)), 1)
    rows = []
    main = next((u for u in pl.layer_at if u != 0), 0)
    # split-mode row: the matrices of the offloaded layers are shared out across the GPUs by the tensor split
    mats = sum(t.n_bytes for t in spec.loaded_tensors if pl.where.get(t.name) == main and len(t.shape) >= 2
               and layer_of(t.name) is not None) if pl.row_shares else 0
    for i, u in enumerate(pl.units):
        w = sum(t.n_bytes for t in spec.loaded_tensors if pl.where.get(t.name) == i)
        if i == 0:
            w += sum(t.n_bytes for t in spec.tensors if t.name in pl.host_copies)
        if pl.row_shares and i in pl.order:
            w = w - (mats if i == main else 0) + int(mats * pl.row_shares[pl.order.index(i)])
        kv_layers = [il for il in range(n) if pl.kv_at[il] == i]
        kv = kv_cache_bytes(spec, s, kv_layers) if kv_layers else 0
        runs = [il for il in range(n) if pl.layer_at[il] == i]
        rec = int(state * sum(1 for il in runs if spec.is_recurrent(il)) / n_rec)
        if i == 0:
            comp = (max(phases["attn"], phases["ffn"], phases["rec"]) if runs else
                    ROWS_OUT * spec.n_embd * s.n_ubatch * F32)
            comp = max(comp, phases["out"]) if pl.output_at == 0 else comp
            other = spec.n_vocab * F32 * s.n_seq + overhead_bytes(spec, s) + rec
        else:
            want = [phases["attn"], phases["ffn"], phases["rec"]] if (runs or w) else []
            if pl.output_at == i:
                want.append(phases["out"])
            comp, other = max(want, default=0), rec
        total = w + kv + comp + other
        rows.append(UnitMemory(u.name, w, kv, comp, other, total, u.usable_bytes,
                               fit_verdict(total, u.usable_bytes, TIGHT_MARGIN), len(runs)))
    pools: dict[str, list[int]] = {}
    for i, u in enumerate(pl.units):
        if u.pool:
            pools.setdefault(u.pool, []).append(i)
    for members in pools.values():  # one memory: every member judged on the pool's total
        if len(members) > 1:
            total = sum(rows[i].total_bytes for i in members)
            for i in members:
                rows[i] = replace(rows[i], fit=fit_verdict(total, pl.units[i].usable_bytes, TIGHT_MARGIN),
                                  share_note=f"shares its memory with {', '.join(pl.units[j].name for j in members if j != i)}"
                                             f" ({total / 1e9:.2f} GB together)")
    return tuple(rows)


# ---------------------------------------------------------------------------------------------------------- speed

@dataclass(frozen=True)
class UnitSpeed:
    name: str
    decode_s: float
    prefill_s: float | None
    bytes_per_token: float


@dataclass(frozen=True)
class SplitSpeed:
    decode_tps: float
    prefill_tps: float | None
    units: tuple[UnitSpeed, ...]
    link_decode_s: float  # per token, every crossing
    link_prefill_s: float | None  # for the whole prompt
    crossings: int  # graph splits a token crosses
    round_trips: int  # of them, ones that wait for a reply across a link
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _visits(spec: ModelSpec, pl: Placement) -> list[int]:
    """The units a token passes through, in graph order, repeats merged: input embeddings, per layer its attention
    (where the KV is), its other ops, its experts, then the output head."""
    seq = [0]
    exp = {}
    for name, u in pl.where.items():
        il = layer_of(name)
        if il is not None and "_exps." in name:
            exp[il] = u
    for il in range(spec.n_layer):
        seq += [pl.layer_at[il], pl.kv_at[il] if spec.has_kv(il) else pl.layer_at[il], pl.layer_at[il]]
        if il in exp:
            seq += [exp[il], pl.layer_at[il]]
    seq.append(pl.output_at)
    merged = [seq[0]]
    for u in seq[1:]:
        if u != merged[-1]:
            merged.append(u)
    if merged[-1] != 0:
        merged.append(0)  # the logits come back to the host
    return merged


def _link(pl: Placement, i: int) -> Link:
    return pl.units[i].link or Link("none", 0.0, 0.0, "unified")


def _crossing_s(pl: Placement, a: int, b: int, nbytes: float, extra_in: float) -> tuple[float, int]:
    """Seconds for a hidden state of `nbytes` to leave unit a and enter unit b, and the round trips it waits for.
    Leaving a device waits for its reply (one round trip); entering one only sends (extra_in: an RPC split's other
    inputs). Two devices exchange through the host."""
    t, trips = 0.0, 0
    if a != 0:
        la = _link(pl, a)
        t += la.seconds(nbytes, 1)
        trips += 1 if la.kind == "network" else 0
    if b != 0:
        lb = _link(pl, b)
        t += lb.seconds(nbytes + (extra_in if lb.kind == "network" else 0), 0 if lb.kind == "network" else 1)
    return t, trips


def _share(spec: ModelSpec, pl: Placement, i: int) -> Share | None:
    """Unit i's part: its tensors, the layers it runs or holds a weight of, the layers whose KV it holds."""
    names = frozenset(n for n, u in pl.where.items() if u == i)
    layers = frozenset(il for il in range(spec.n_layer) if pl.layer_at[il] == i) | \
        frozenset(il for il in map(layer_of, names) if il is not None and il < spec.n_layer)
    kv = frozenset(il for il in range(spec.n_layer) if pl.kv_at[il] == i)
    if not (names or layers or kv):
        return None
    return Share(names, layers, kv, token=True)


def _rates(u: Unit, work):
    if isinstance(u.params, CpuKernelParams):
        return kernel_rates(u.params, u.speed, work)
    return class_rates(u.params, u.speed, work)


def _rules(u: Unit):
    return None if isinstance(u.params, CpuKernelParams) else u.params


def speed(spec: ModelSpec, pl: Placement, s: RuntimeSettings, n_prompt: int = 512, depth: int = 0,
          fetch_logits: bool = True) -> SplitSpeed:
    """Decode and prefill of a split: each unit's terms for its share, plus every crossing of a link.

    `fetch_logits`: each token's logits (n_vocab f32) come back from the device with the head, as llama.cpp copies
    them for every output token (128 KB a token of a 32k vocabulary, counted on the wire here); False for a run
    that asks for none."""
    notes = []
    shares = [_share(spec, pl, i) for i in range(len(pl.units))]
    missing = [u.name for u, sh in zip(pl.units, shares) if (u.speed is None or u.params is None) and sh is not None]
    if missing:
        raise UsageError(f"no speed inputs for {', '.join(missing)}: its bandwidth is not known")
    ub = min(s.n_ubatch, n_prompt) if n_prompt else s.n_ubatch
    passes = math.ceil(n_prompt / s.n_ubatch) if n_prompt else 0
    rows, dec_total, pp_total, have_pp = [], 0.0, 0.0, bool(n_prompt)
    offloader = next((i for i in pl.order if pl.units[i].offload_op), None)
    parallel = []
    for i, (u, sh) in enumerate(zip(pl.units, shares)):
        if sh is None:
            continue
        n_ub = PREFILL_CHUNK.get(u.speed.backend, s.n_ubatch)
        dw = device_work(spec, u.speed, _rules(u), n_prompt, depth, n_ub, kernels=_rules(u) is None, share=sh,
                         mode=AttnMode.of(s))
        w = dw.main
        if pl.row_shares and i in pl.order:  # row split: this GPU streams and multiplies its share of each matrix
            f = pl.row_shares[pl.order.index(i)]
            w = replace(w, dec_elems=w.dec_elems * f, dec_bytes=w.dec_bytes * f, pp_elems=w.pp_elems * f,
                        slow_elems=w.slow_elems * f, pp_narrow=w.pp_narrow * f, pass_bytes=w.pass_bytes * f)
        r = _rates(u, w)
        d = decode_terms(w, r)
        dec = float(d["total"][0])
        pp = float(prefill_seconds(w, r, d["fixed"])[0])
        if dw.cpu is not None:
            c_dec, c_pp = cpu_side_seconds(dw.cpu, u.params.cpu, u.speed)
            dec, pp = dec + float(c_dec[0]), pp + float(c_pp[0])
        if i == 0 and offloader is not None and ub >= OFFLOAD_MIN_BATCH and w.pp_elems.sum() > 0:
            # the host's prompt products run on the GPU, their weights copied over the link once per ubatch
            g = pl.units[offloader]
            rg = _rates(g, w)
            mm = lambda rr: float(products_seconds(w, rr)[0])  # noqa: E731
            pp = pp - mm(r) + mm(rg) + passes * _link(pl, offloader).seconds(float(w.pass_bytes[0]), 1)
            notes.append(f"prompt products of the weights in host memory run on {g.name} (batches of >= "
                         f"{OFFLOAD_MIN_BATCH} tokens), the weights copied over {_link(pl, offloader).name} each ubatch")
        if not (u.params is not None and (isinstance(u.params, CpuKernelParams) or device_flops(u.params, u.speed))):
            have_pp = False
        row = UnitSpeed(u.name, dec, pp, float((w.dec_bytes.sum() + w.kv_bytes.sum())))
        rows.append(row)
        if pl.row_shares and i in pl.order:
            parallel.append(row)
        else:
            dec_total, pp_total = dec_total + dec, pp_total + pp
    if parallel:  # the GPUs of a row split work at once: the slowest sets the pace
        dec_total += max(r.decode_s for r in parallel)
        pp_total += max(r.prefill_s for r in parallel)
    hidden = spec.n_embd * F32
    visits = _visits(spec, pl)
    mask_elt = 2 if s.flash_attn else F32
    n_kv_dec = pad(max(depth, 1), KV_PAD)
    n_kv_pp = min(pad(depth + ub, KV_PAD), kv_cells(spec, s)[0])
    link_dec = link_pp = 0.0
    trips = 0
    for a, b in zip(visits, visits[1:]):
        # what crosses: the hidden state (f32 per token), the logits of one token on the way back to the host
        logits = fetch_logits and b == 0 and a == pl.output_at and a != 0
        t, k = _crossing_s(pl, a, b, spec.n_vocab * F32 if logits else hidden, n_kv_dec * mask_elt + 64)
        link_dec, trips = link_dec + t, trips + k
        if n_prompt:  # every ubatch crosses with its tokens' hidden states; only the last token's logits come back
            size = spec.n_vocab * F32 if logits else hidden * ub
            link_pp += passes * _crossing_s(pl, a, b, size, n_kv_pp * pad(ub, 64) * mask_elt + 4 * ub)[0]
    for i, u in enumerate(pl.units):  # each prompt pass sends every RPC server more than its inputs (measured)
        if u.role == "rpc" and u.link is not None:
            link_pp += passes * u.link.seconds(RPC_PASS_BYTES_PER_LAYER * pl.layer_at.count(i))
    if pl.row_shares:  # two joins of the partial results per layer over the GPUs' links
        join = max(_link(pl, i).seconds(hidden, 1) for i in pl.order)
        link_dec += 2 * spec.n_layer * join
        link_pp += passes * 2 * spec.n_layer * max(_link(pl, i).seconds(hidden * ub, 1) for i in pl.order)
    decode_tps = 1 / (dec_total + link_dec)
    prefill_tps = n_prompt / (pp_total + link_pp) if have_pp and n_prompt else None
    return SplitSpeed(decode_tps, prefill_tps, tuple(rows), link_dec, link_pp if n_prompt else None,
                      len(visits) - 1, trips, tuple(dict.fromkeys(notes)))
