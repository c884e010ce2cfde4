"""What llama.cpp's converter writes for a catalog entry: the GGUF keys its loader reads, and every tensor's shape.

One table per architecture family, each following the loader it cites (llama.cpp src/models/<arch>.cpp, as
vendored in llama-cpp-python 0.3.36). A catalog entry becomes a header exactly like a real file's, so the
hybrid layout (recurrent layers and their state widths, KV shared across layers, sliding-layer head dims,
per-layer embeddings, MTP blocks) is read by the same code that reads a GGUF: no second description.

Architecture-specific shape facts sit in the catalog's `arch_params` column as `key=value;...` (lists with
`/`); each is named after the config.json field it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Shapes = list[tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class Layout:
    metadata: dict[str, Any]  # {arch}.* keys as llama.cpp reads them
    shapes: Shapes  # (tensor name, ggml shape: ne0 first)


def parse_params(text: str) -> dict[str, Any]:
    """'a=1;b=2/5/8;c=x' -> {'a': 1, 'b': [2, 5, 8], 'c': 'x'}."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        key, _, value = part.partition("=")
        items = [int(v) if v.lstrip("-").isdigit() else v for v in value.split("/")]
        out[key.strip()] = items if "/" in value else items[0]
    return out


def _ints(v) -> list[int]:
    return list(v) if isinstance(v, list) else [v]


def base_metadata(e, p: dict[str, Any]) -> dict[str, Any]:
    """Keys every llama.cpp text model reads (llama-model.cpp load_hparams)."""
    a = e.arch
    meta = {
        f"{a}.context_length": e.n_ctx_train,
        f"{a}.embedding_length": e.n_embd,
        f"{a}.block_count": e.n_layer + p.get("nextn", 0),
        f"{a}.feed_forward_length": e.n_ff,
        f"{a}.attention.head_count": e.n_head,
        f"{a}.attention.head_count_kv": e.n_head_kv,
        f"{a}.attention.key_length": e.head_dim,
        f"{a}.attention.value_length": e.head_dim,
        f"{a}.rope.dimension_count": e.head_dim,
        f"{a}.rope.freq_base": 10000.0,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{a}.attention.layer_norm_epsilon": 1e-5,
    }
    if e.swa_window:
        meta[f"{a}.attention.sliding_window"] = e.swa_window
    if e.n_expert:
        meta[f"{a}.expert_count"] = e.n_expert
        meta[f"{a}.expert_used_count"] = e.n_expert_used
        meta[f"{a}.expert_feed_forward_length"] = e.expert_ff
    return meta


def _head(e, output_norm: str = "output_norm.weight") -> Shapes:
    t = [("token_embd.weight", (e.n_embd, e.n_vocab)), (output_norm, (e.n_embd,))]
    return t if e.tied else t + [("output.weight", (e.n_embd, e.n_vocab))]


def qkv_shapes(b: str, d: int, q: int, k: int, v: int | None = None) -> Shapes:
    t = [(b + "attn_q.weight", (d, q)), (b + "attn_k.weight", (d, k))]
    return t + ([(b + "attn_v.weight", (d, k if v is None else v))] if v != 0 else [])


def ffn_shapes(b: str, d: int, ff: int) -> Shapes:
    return [(b + "ffn_gate.weight", (d, ff)), (b + "ffn_up.weight", (d, ff)), (b + "ffn_down.weight", (ff, d))]


def expert_shapes(b: str, d: int, ff: int, n: int) -> Shapes:
    return [(b + "ffn_gate_inp.weight", (d, n)), (b + "ffn_gate_exps.weight", (d, ff, n)),
            (b + "ffn_up_exps.weight", (d, ff, n)), (b + "ffn_down_exps.weight", (ff, d, n))]


def _shared_experts(b: str, d: int, ff: int) -> Shapes:
    return [(b + "ffn_gate_shexp.weight", (d, ff)), (b + "ffn_up_shexp.weight", (d, ff)),
            (b + "ffn_down_shexp.weight", (ff, d))]


def _qwen35(e, p, meta: dict) -> Shapes:
    """src/models/qwen35.cpp: gated delta net layers (recurrent) and gated full attention every attn_every-th
    layer; q_proj emits query and gate (2x). SSM keys as conversion writes them: state_size = linear key head dim,
    group_count = key heads, time_step_rank = value heads, inner_size = value heads x value head dim."""
    a, d, hd, every = e.arch, e.n_embd, e.head_dim, p["attn_every"]
    kh, vh, khd, vhd = p["lin_k_heads"], p["lin_v_heads"], p["lin_k_dim"], p["lin_v_dim"]
    key_dim, value_dim = kh * khd, vh * vhd
    nextn = p.get("nextn", 0)
    if e.n_expert:
        meta[f"{a}.expert_shared_feed_forward_length"] = p["shexp_ff"]
    meta.update({f"{a}.rope.dimension_count": hd // 4, f"{a}.rope.dimension_sections": [11, 11, 10, 0],  # mRoPE
                 f"{a}.ssm.conv_kernel": p["conv"], f"{a}.ssm.state_size": khd, f"{a}.ssm.group_count": kh,
                 f"{a}.ssm.time_step_rank": vh, f"{a}.ssm.inner_size": value_dim,
                 f"{a}.full_attention_interval": every, f"{a}.nextn_predict_layers": nextn,
                 f"{a}.attention.recurrent_layers": [il < e.n_layer and (il + 1) % every != 0
                                                     for il in range(e.n_layer + nextn)]})
    t = _head(e)
    for il in range(e.n_layer + nextn):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "post_attention_norm.weight", (d,))]
        if il >= e.n_layer or (il + 1) % every == 0:
            t += qkv_shapes(b, d, 2 * hd * e.n_head, hd * e.n_head_kv)
            t += [(b + "attn_output.weight", (hd * e.n_head, d)), (b + "attn_q_norm.weight", (hd,)),
                  (b + "attn_k_norm.weight", (hd,))]
        else:
            t += [(b + "attn_qkv.weight", (d, 2 * key_dim + value_dim)), (b + "attn_gate.weight", (d, value_dim)),
                  (b + "ssm_conv1d.weight", (p["conv"], 2 * key_dim + value_dim)), (b + "ssm_dt.bias", (vh,)),
                  (b + "ssm_a", (vh,)), (b + "ssm_beta.weight", (d, vh)), (b + "ssm_alpha.weight", (d, vh)),
                  (b + "ssm_norm.weight", (vhd,)), (b + "ssm_out.weight", (value_dim, d))]
        if e.n_expert:  # qwen35moe.cpp / qwen3next.cpp: routed experts and a gated shared expert on every layer
            sh = p["shexp_ff"]
            t += expert_shapes(b, d, e.expert_ff, e.n_expert) + [(b + "ffn_gate_inp_shexp.weight", (d,))]
            t += _shared_experts(b, d, sh)
        else:
            t += ffn_shapes(b, d, e.n_ff)
        if il >= e.n_layer:
            t += _mtp(b, d)
    return t


def _lfm2(e, p, meta: dict) -> Shapes:
    """src/models/lfm2.cpp (and lfm2moe.cpp): gated short convolutions, GQA attention on the layers listed in
    attn_layers (the converter writes head_count_kv 0 on the others); the final norm is token_embd_norm."""
    a, d, hd, attn = e.arch, e.n_embd, e.head_dim, set(_ints(p["attn_layers"]))
    lead = p.get("dense_lead", e.n_layer)  # lfm2moe: routed experts with a selection bias after the first layers
    meta.update({f"{a}.attention.head_count_kv": [e.n_head_kv if il in attn else 0 for il in range(e.n_layer)],
                 f"{a}.shortconv.l_cache": p["l_cache"], f"{a}.leading_dense_block_count": lead})
    t = _head(e, "token_embd_norm.weight")
    for il in range(e.n_layer):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "ffn_norm.weight", (d,))]
        t += ffn_shapes(b, d, e.n_ff) if il < lead else expert_shapes(b, d, e.expert_ff, e.n_expert) + [
            (b + "exp_probs_b.bias", (e.n_expert,))]
        if il in attn:
            t += qkv_shapes(b, d, d, hd * e.n_head_kv) + [(b + "attn_output.weight", (d, d)),
                                                     (b + "attn_q_norm.weight", (hd,)), (b + "attn_k_norm.weight", (hd,))]
        else:
            t += [(b + "shortconv.conv.weight", (p["l_cache"], d)), (b + "shortconv.in_proj.weight", (d, 3 * d)),
                  (b + "shortconv.out_proj.weight", (d, d))]
    return t


def _granitehybrid(e, p, meta: dict) -> Shapes:
    """src/models/granite-hybrid.cpp: Mamba2 layers (head_count_kv 0) and GQA attention on attn_layers; dense FFN,
    or routed experts plus one shared expert of shexp_ff."""
    a, d, hd, attn = e.arch, e.n_embd, e.head_dim, set(_ints(p["attn_layers"]))
    conv, inner, state, groups, heads = p["conv"], p["d_inner"], p["d_state"], p["n_groups"], p["ssm_heads"]
    meta.update({f"{a}.attention.head_count_kv": [e.n_head_kv if il in attn else 0 for il in range(e.n_layer)],
                 f"{a}.ssm.conv_kernel": conv, f"{a}.ssm.inner_size": inner, f"{a}.ssm.state_size": state,
                 f"{a}.ssm.time_step_rank": heads, f"{a}.ssm.group_count": groups})
    if p.get("shexp_ff"):
        meta[f"{a}.expert_shared_feed_forward_length"] = p["shexp_ff"]
    xbc = inner + 2 * groups * state
    t = _head(e)
    for il in range(e.n_layer):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "ffn_norm.weight", (d,))]
        if il in attn:
            t += qkv_shapes(b, d, hd * e.n_head, hd * e.n_head_kv) + [(b + "attn_output.weight", (hd * e.n_head, d))]
        else:
            t += [(b + "ssm_in.weight", (d, 2 * inner + 2 * groups * state + heads)), (b + "ssm_conv1d.weight", (conv, xbc)),
                  (b + "ssm_conv1d.bias", (xbc,)), (b + "ssm_dt.bias", (heads,)), (b + "ssm_a", (1, heads)),
                  (b + "ssm_d", (1, heads)), (b + "ssm_norm.weight", (inner // groups, groups)),
                  (b + "ssm_out.weight", (inner, d))]
        if e.n_expert:
            t += expert_shapes(b, d, e.expert_ff, e.n_expert) + _shared_experts(b, d, p["shexp_ff"])
        else:
            t += ffn_shapes(b, d, e.n_ff)
    return t


def _gemma_ple(e, p, meta: dict, t: Shapes) -> int:
    """Per-layer embeddings (Gemma-3n/4): a second token table of ple x n_layer columns, looked up per token."""
    ple = p.get("ple", 0)
    if ple:
        meta[f"{e.arch}.embedding_length_per_layer_input"] = ple
        t += [("per_layer_token_embd.weight", (ple * e.n_layer, e.n_vocab)),
              ("per_layer_model_proj.weight", (e.n_embd, ple * e.n_layer)), ("per_layer_proj_norm.weight", (ple,))]
    return ple


def _gemma3n(e, p, meta: dict) -> Shapes:
    """src/models/gemma3n.cpp: iSWA (4 sliding : 1 full), KV in the first 20 layers only (hard-coded), AltUp with
    altup streams and LAuReL of laurel_rank in every layer, per-layer embeddings."""
    a, d, hd, ff, n_alt, rank = e.arch, e.n_embd, e.head_dim, e.n_ff, p["altup"], p["laurel"]
    meta[f"{a}.attention.shared_kv_layers"] = p["shared_kv"]
    t = _head(e)
    t += [("altup_proj.weight", (d, d, n_alt - 1)), ("altup_unembd_proj.weight", (d, d, n_alt - 1))]
    ple = _gemma_ple(e, p, meta, t)
    for il in range(e.n_layer):
        b = f"blk.{il}."
        t += qkv_shapes(b, d, hd * e.n_head, hd * e.n_head_kv)
        t += [(b + "attn_output.weight", (hd * e.n_head, d)), (b + "attn_q_norm.weight", (hd,)),
              (b + "attn_k_norm.weight", (hd,))] + ffn_shapes(b, d, ff)
        t += [(b + n, (d,)) for n in ("attn_norm.weight", "post_attention_norm.weight", "ffn_norm.weight",
                                      "post_ffw_norm.weight", "post_norm.weight", "altup_correct_scale.weight",
                                      "altup_router_norm.weight", "laurel_post_norm.weight")]
        t += [(b + "inp_gate.weight", (d, ple)), (b + "proj.weight", (ple, d)),
              (b + "altup_correct_coef.weight", (n_alt, n_alt)), (b + "altup_predict_coef.weight", (n_alt, n_alt * n_alt)),
              (b + "altup_router.weight", (d, n_alt)), (b + "laurel_l.weight", (d, rank)), (b + "laurel_r.weight", (rank, d))]
    return t


def _gemma4(e, p, meta: dict) -> Shapes:
    """src/models/gemma4.cpp: iSWA with their own head dims (head_dim on global layers, head_dim_swa on sliding),
    KV heads per layer type, the last shared_kv layers reuse KV (no K/V weights), per-layer FFN widths
    (ff_shared on the KV-sharing layers where the model doubles them), per-layer embeddings, optional experts
    beside the dense FFN."""
    a, d, n = e.arch, e.n_embd, e.n_layer
    swa = [il % e.swa_pattern < e.swa_pattern - 1 for il in range(n)]
    hd_g, hd_s = e.head_dim, p["head_dim_swa"]
    kv_s, kv_g = e.n_head_kv, p.get("n_head_kv_global", e.n_head_kv)
    shared = p.get("shared_kv", 0)
    n_kv = n - shared
    ffs = [p.get("ff_shared", e.n_ff) if il >= n_kv else e.n_ff for il in range(n)]
    heads_kv = [kv_s if s else kv_g for s in swa]
    meta.update({f"{a}.attention.key_length_swa": hd_s, f"{a}.attention.value_length_swa": hd_s,
                 f"{a}.rope.dimension_count_swa": hd_s, f"{a}.attention.sliding_window_pattern": swa,
                 f"{a}.attention.shared_kv_layers": shared, f"{a}.feed_forward_length": ffs,
                 f"{a}.attention.head_count_kv": heads_kv if kv_s != kv_g else kv_s})
    t = _head(e)
    ple = _gemma_ple(e, p, meta, t)
    t.append(("rope_freqs.weight", (hd_g // 2,)))
    for il in range(n):
        b, hd = f"blk.{il}.", hd_s if swa[il] else hd_g
        kv = hd * heads_kv[il]
        t += [(b + "attn_q.weight", (d, hd * e.n_head)), (b + "attn_output.weight", (hd * e.n_head, d)),
              (b + "attn_q_norm.weight", (hd,)), (b + "layer_output_scale.weight", (1,))]
        if il < n_kv:
            t += [(b + "attn_k.weight", (d, kv)), (b + "attn_k_norm.weight", (hd,))]
            if not (p.get("k_eq_v") and not swa[il]):  # global layers of the large models reuse K as V
                t.append((b + "attn_v.weight", (d, kv)))
        t += ffn_shapes(b, d, ffs[il])
        t += [(b + n_, (d,)) for n_ in ("attn_norm.weight", "post_attention_norm.weight", "ffn_norm.weight",
                                        "post_ffw_norm.weight")]
        if e.n_expert:
            t += expert_shapes(b, d, e.expert_ff, e.n_expert)
            t += [(b + n_, (d,)) for n_ in ("ffn_gate_inp.scale", "pre_ffw_norm_2.weight", "post_ffw_norm_1.weight",
                                            "post_ffw_norm_2.weight")]
        if ple:
            t += [(b + "inp_gate.weight", (d, ple)), (b + "proj.weight", (ple, d)), (b + "post_norm.weight", (d,))]
    return t


def _gpt_oss(e, p, meta: dict) -> Shapes:
    """src/models/openai-moe.cpp: biases on attention and experts, one attention sink per head, alternating
    128-token window (even layers sliding), every layer MoE."""
    d, hd, nx, ff = e.n_embd, e.head_dim, e.n_expert, e.expert_ff
    q, kv = hd * e.n_head, hd * e.n_head_kv
    t = _head(e)
    for il in range(e.n_layer):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "post_attention_norm.weight", (d,))] + qkv_shapes(b, d, q, kv)
        t += [(b + "attn_q.bias", (q,)), (b + "attn_k.bias", (kv,)), (b + "attn_v.bias", (kv,)),
              (b + "attn_output.weight", (q, d)), (b + "attn_output.bias", (d,)), (b + "attn_sinks.weight", (e.n_head,))]
        t += expert_shapes(b, d, ff, nx) + [(b + "ffn_gate_inp.bias", (nx,)), (b + "ffn_gate_exps.bias", (ff, nx)),
                                       (b + "ffn_up_exps.bias", (ff, nx)), (b + "ffn_down_exps.bias", (d, nx))]
    return t


def _olmoe(e, p, meta: dict) -> Shapes:
    """src/models/olmoe.cpp: QK-norm over the whole projection (n_embd wide), every layer MoE."""
    d, kv = e.n_embd, e.head_dim * e.n_head_kv
    meta[f"{e.arch}.feed_forward_length"] = e.expert_ff  # olmoe.cpp shapes its experts by n_ff
    t = _head(e)
    for il in range(e.n_layer):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "ffn_norm.weight", (d,))] + qkv_shapes(b, d, d, kv)
        t += [(b + "attn_output.weight", (d, d)), (b + "attn_q_norm.weight", (d,)), (b + "attn_k_norm.weight", (kv,))]
        t += expert_shapes(b, d, e.expert_ff, e.n_expert)
    return t


def _mtp(b: str, d: int) -> Shapes:
    """A multi-token-prediction block's own tensors (previous hidden state and next token's embedding, projected)."""
    return [(b + "nextn.eh_proj.weight", (2 * d, d)), (b + "nextn.enorm.weight", (d,)), (b + "nextn.hnorm.weight", (d,)),
            (b + "nextn.shared_head_norm.weight", (d,))]


def _deepseek_ffn(e, b: str, il: int, lead: int, shared: int) -> Shapes:
    """DeepSeekMoE as llama.cpp loads it (deepseek2.cpp, glm4-moe.cpp): `lead` dense layers, then routed experts with
    a selection bias beside `shared` always-on experts of the same width; an MTP block's own tensors past n_layer."""
    d = e.n_embd
    t = ffn_shapes(b, d, e.n_ff) if il < lead else expert_shapes(b, d, e.expert_ff, e.n_expert) + [
        (b + "exp_probs_b.bias", (e.n_expert,))] + _shared_experts(b, d, e.expert_ff * shared)
    return t + (_mtp(b, d) if il >= e.n_layer else [])


def _deepseek2(e, p, meta: dict) -> Shapes:
    """src/models/deepseek2.cpp with multi-head latent attention as converted today: one KV head whose key is the
    compressed latent plus its RoPE part (head_dim = kv_lora + rope), V a view of it (value_length = kv_lora), the
    per-head sizes in key/value_length_mla; q through a low-rank pair unless q_lora is 0 (the Lite models); the
    first dense_lead layers dense, the rest routed experts plus n_shared shared ones; nextn MTP blocks at the end."""
    a, d, nh = e.arch, e.n_embd, e.n_head
    ql, kvl, rope, nope, vm = p.get("q_lora", 0), p["kv_lora"], p["rope"], p["nope"], p["v_mla"]
    lead, shared, nextn = p["dense_lead"], p["n_shared"], p.get("nextn", 0)
    meta.update({f"{a}.attention.value_length": kvl, f"{a}.attention.key_length_mla": nope + rope,
                 f"{a}.attention.value_length_mla": vm, f"{a}.rope.dimension_count": rope,
                 f"{a}.attention.kv_lora_rank": kvl, f"{a}.leading_dense_block_count": lead,
                 f"{a}.expert_shared_count": shared, f"{a}.nextn_predict_layers": nextn})
    if ql:
        meta[f"{a}.attention.q_lora_rank"] = ql
    t = _head(e)
    for il in range(e.n_layer + nextn):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "attn_kv_a_norm.weight", (kvl,))]
        t += ([(b + "attn_q_a_norm.weight", (ql,)), (b + "attn_q_a.weight", (d, ql)),
               (b + "attn_q_b.weight", (ql, nh * (nope + rope)))] if ql else [(b + "attn_q.weight", (d, nh * (nope + rope)))])
        t += [(b + "attn_kv_a_mqa.weight", (d, kvl + rope)), (b + "attn_k_b.weight", (nope, kvl, nh)),
              (b + "attn_v_b.weight", (kvl, vm, nh)), (b + "attn_output.weight", (nh * vm, d)), (b + "ffn_norm.weight", (d,))]
        t += _deepseek_ffn(e, b, il, lead, shared)
    return t


def _llama4(e, p, meta: dict) -> Shapes:
    """src/models/llama4.cpp: every moe_every-th layer routed experts plus one shared expert of the experts' width,
    the others a dense FFN of n_ff; chunked attention (8192-token chunks) on three layers of four, which
    llama.cpp keeps in a sliding-window-sized cache (no sliding_window key: the loader's default)."""
    a, d, step = e.arch, e.n_embd, p["moe_every"]
    meta.update({f"{a}.interleave_moe_layer_step": step})
    t = _head(e)
    for il in range(e.n_layer):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "ffn_norm.weight", (d,))]
        t += qkv_shapes(b, d, e.head_dim * e.n_head, e.head_dim * e.n_head_kv)
        t.append((b + "attn_output.weight", (e.head_dim * e.n_head, d)))
        if (il + 1) % step == 0:
            t += expert_shapes(b, d, e.expert_ff, e.n_expert) + _shared_experts(b, d, e.expert_ff)
        else:
            t += ffn_shapes(b, d, e.n_ff)
    return t


def _glm4moe(e, p, meta: dict) -> Shapes:
    """src/models/glm4-moe.cpp: biased QKV, optional QK-norm, a post-attention norm; dense_lead dense layers, then
    routed experts with a selection bias and n_shared shared experts; nextn MTP blocks at the end."""
    a, d, hd = e.arch, e.n_embd, e.head_dim
    lead, shared, nextn = p["dense_lead"], p["n_shared"], p.get("nextn", 0)
    q, kv = hd * e.n_head, hd * e.n_head_kv
    meta.update({f"{a}.leading_dense_block_count": lead, f"{a}.expert_shared_count": shared,
                 f"{a}.nextn_predict_layers": nextn, f"{a}.rope.dimension_count": hd // 2})
    t = _head(e)
    for il in range(e.n_layer + nextn):
        b = f"blk.{il}."
        t += [(b + "attn_norm.weight", (d,)), (b + "post_attention_norm.weight", (d,))] + qkv_shapes(b, d, q, kv)
        t += [(b + "attn_q.bias", (q,)), (b + "attn_k.bias", (kv,)), (b + "attn_v.bias", (kv,)),
              (b + "attn_output.weight", (q, d))]
        if p.get("qk_norm"):
            t += [(b + "attn_q_norm.weight", (hd,)), (b + "attn_k_norm.weight", (hd,))]
        t += _deepseek_ffn(e, b, il, lead, shared)
    return t


FAMILIES: dict[str, Callable[..., Shapes]] = {
    "qwen35": _qwen35, "lfm2": _lfm2, "lfm2moe": _lfm2, "granitehybrid": _granitehybrid, "gemma3n": _gemma3n, "gemma4": _gemma4,
    "gpt-oss": _gpt_oss, "olmoe": _olmoe, "qwen35moe": _qwen35, "qwen3next": _qwen35, "deepseek2": _deepseek2,
    "llama4": _llama4, "glm4moe": _glm4moe,
}


def layout(e) -> Layout | None:
    """The header a converted file of entry `e` would have, or None for the classic layouts catalog.py builds."""
    build = FAMILIES.get(e.arch)
    if build is None:
        return None
    p = parse_params(e.arch_params)
    meta = base_metadata(e, p)
    return Layout(meta, build(e, p, meta))
