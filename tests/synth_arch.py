#!/usr/bin/env python3
"""Write tiny synthetic GGUFs for hybrid / iSWA / KV-shared llama.cpp architectures
and (optionally) load them with llama-cpp-python to compare llama.cpp's reported
KV-cache / recurrent-state sizes with a closed-form prediction.

Usage:
    python synth_arch.py ARCH OUTDIR            # writes OUTDIR/ARCH.gguf
    python synth_arch.py ARCH OUTDIR --load     # ... and loads it in a child process
    python synth_arch.py all OUTDIR --load      # every arch
Options for --load:
    --n-ctx N (2048)  --n-ubatch N (512)  --n-batch N (512)
    --swa-full {1,0}  (1 = llama-cpp-python default: full-size SWA cache)
    --flash-attn {0,1} (0 = llama-cpp-python default; V cache transposed)
    --json            (print one JSON object per arch instead of a table)

Source: llama.cpp @ 0c1e57098 (the copy vendored in llama-cpp-python 0.3.36's sdist).
Arch names: qwen35 qwen3next lfm2 granitehybrid gemma3n gemma4 gpt-oss deepseek2
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np

ARCHS = ["qwen35", "qwen3next", "lfm2", "granitehybrid", "gemma3n", "gemma4", "gpt-oss", "deepseek2"]

F16, F32 = "f16", "f32"
MiB = 1024.0 * 1024.0


def pad(x: int, n: int) -> int:
    return (x + n - 1) // n * n


# --------------------------------------------------------------------------------------
# tokenizer: a tiny SentencePiece ("llama") vocab; llama-vocab.cpp only needs tokens,
# scores, token types; bos/eos/unk default to 1/2/0 and "<0x0A>" gives the LF token.
# --------------------------------------------------------------------------------------
def vocab():
    toks = ["<unk>", "<s>", "</s>", "<0x0A>"]
    types = [2, 3, 3, 6]
    for c in "abcdefghijklmnopqrstuvwxyz":
        toks += ["\u2581" + c, c]
        types += [1, 1]
    while len(toks) < 64:
        toks.append(f"\u2581t{len(toks)}")
        types.append(1)
    scores = [0.0] * 4 + [-float(i) for i in range(len(toks) - 4)]
    return toks, scores, types


N_VOCAB = len(vocab()[0])


# --------------------------------------------------------------------------------------
# per-arch model specs.  Each returns (hparams-kv dict, tensor list, layer table, extras)
#   kv:     {key_suffix_or_full_key: (value, type)}; "%s." is prefixed with the arch
#   tensors:[(name, ggml_shape(ne0, ne1, ...), dtype)]
#   layers: list of dict(kind=attn|swa|recr|shared, k=n_embd_k_gqa(il), v=n_embd_v_gqa(il))
# --------------------------------------------------------------------------------------
U32, F32K, BOOL, STR, ARR_U32, ARR_I32, ARR_BOOL, ARR_F32 = (
    "u32", "f32", "bool", "str", "arr_u32", "arr_i32", "arr_bool", "arr_f32")


def common_kv(n_ctx_train, n_embd, n_layer, n_ff, n_head, n_head_kv, eps=1e-6):
    kv = {
        "context_length": (n_ctx_train, U32),
        "embedding_length": (n_embd, U32),
        "block_count": (n_layer, U32),
        "attention.head_count": (n_head, ARR_U32 if isinstance(n_head, list) else U32),
        "attention.head_count_kv": (n_head_kv, ARR_U32 if isinstance(n_head_kv, list) else U32),
        "attention.layer_norm_rms_epsilon": (eps, F32K),
    }
    if n_ff is not None:
        kv["feed_forward_length"] = (n_ff, ARR_U32 if isinstance(n_ff, list) else U32)
    return kv


def spec_qwen35(moe=False):
    """Qwen3.5 / Qwen3-Next: gated delta net (recurrent) + gated full attention."""
    arch = "qwen3next" if moe else "qwen35"
    n_embd, n_layer, n_ff = 256, 8, 512
    n_head, n_head_kv, head_dim = 4, 2, 64
    d_conv, d_state, n_group, dt_rank = 4, 128, 2, 4  # head_k_dim, num_k_heads, num_v_heads
    d_inner = d_state * dt_rank                        # value_dim = head_v_dim * num_v_heads
    fai = 4                                            # full_attention_interval
    kv = common_kv(32768, n_embd, n_layer, n_ff, n_head, n_head_kv)
    kv.update({
        "attention.key_length": (head_dim, U32),
        "attention.value_length": (head_dim, U32),
        "rope.dimension_count": (16, U32),
        "rope.freq_base": (1e7, F32K),
        "ssm.conv_kernel": (d_conv, U32),
        "ssm.inner_size": (d_inner, U32),
        "ssm.state_size": (d_state, U32),
        "ssm.time_step_rank": (dt_rank, U32),
        "ssm.group_count": (n_group, U32),
        "full_attention_interval": (fai, U32),
        # conversion/qwen.py writes this bool array (length = block_count incl. MTP layers)
        "attention.recurrent_layers": ([(il + 1) % fai != 0 for il in range(n_layer)], ARR_BOOL),
    })
    if not moe:
        kv["rope.dimension_sections"] = ([3, 3, 2, 0], ARR_I32)
    n_expert, n_expert_used, n_ff_exp, n_ff_shexp = 8, 2, 128, 128
    if moe:
        kv.update({
            "expert_count": (n_expert, U32),
            "expert_used_count": (n_expert_used, U32),
            "expert_feed_forward_length": (n_ff_exp, U32),
            "expert_shared_feed_forward_length": (n_ff_shexp, U32),
        })
    key_dim, value_dim = d_state * n_group, d_state * dt_rank
    conv_dim = 2 * key_dim + value_dim
    T = [("token_embd.weight", (n_embd, N_VOCAB), F16), ("output_norm.weight", (n_embd,), F32)]
    layers = []
    for il in range(n_layer):
        recr = (il + 1) % fai != 0
        b = f"blk.{il}."
        T += [(b + "attn_norm.weight", (n_embd,), F32), (b + "post_attention_norm.weight", (n_embd,), F32)]
        if not recr:
            T += [(b + "attn_q.weight", (n_embd, head_dim * n_head * 2), F16),
                  (b + "attn_k.weight", (n_embd, head_dim * n_head_kv), F16),
                  (b + "attn_v.weight", (n_embd, head_dim * n_head_kv), F16),
                  (b + "attn_output.weight", (head_dim * n_head, n_embd), F16),
                  (b + "attn_q_norm.weight", (head_dim,), F32),
                  (b + "attn_k_norm.weight", (head_dim,), F32)]
            layers.append(dict(kind="attn", k=head_dim * n_head_kv, v=head_dim * n_head_kv))
        else:
            T += [(b + "attn_qkv.weight", (n_embd, conv_dim), F16),
                  (b + "attn_gate.weight", (n_embd, value_dim), F16),
                  (b + "ssm_conv1d.weight", (d_conv, conv_dim), F32),
                  (b + "ssm_dt.bias", (dt_rank,), F32),
                  (b + "ssm_a", (dt_rank,), F32),
                  (b + "ssm_norm.weight", (d_state,), F32),
                  (b + "ssm_out.weight", (value_dim, n_embd), F16)]
            if moe:
                T += [(b + "ssm_ba.weight", (n_embd, 2 * dt_rank), F16)]
            else:
                T += [(b + "ssm_beta.weight", (n_embd, dt_rank), F16),
                      (b + "ssm_alpha.weight", (n_embd, dt_rank), F16)]
            # head_count_kv is a scalar, so n_embd_{k,v}_gqa(il) of a recurrent layer is
            # still head_dim*n_head_kv (matters only for n_embd_v_gqa_max)
            layers.append(dict(kind="recr", k=head_dim * n_head_kv, v=head_dim * n_head_kv))
        if moe:
            T += [(b + "ffn_gate_inp.weight", (n_embd, n_expert), F32),
                  (b + "ffn_gate_exps.weight", (n_embd, n_ff_exp, n_expert), F16),
                  (b + "ffn_up_exps.weight", (n_embd, n_ff_exp, n_expert), F16),
                  (b + "ffn_down_exps.weight", (n_ff_exp, n_embd, n_expert), F16),
                  (b + "ffn_gate_inp_shexp.weight", (n_embd,), F32),
                  (b + "ffn_gate_shexp.weight", (n_embd, n_ff_shexp), F16),
                  (b + "ffn_up_shexp.weight", (n_embd, n_ff_shexp), F16),
                  (b + "ffn_down_shexp.weight", (n_ff_shexp, n_embd), F16)]
        else:
            T += [(b + "ffn_gate.weight", (n_embd, n_ff), F16),
                  (b + "ffn_up.weight", (n_embd, n_ff), F16),
                  (b + "ffn_down.weight", (n_ff, n_embd), F16)]
    # llama-hparams.cpp n_embd_r()/n_embd_s() (Mamba-style branch)
    n_embd_r = (d_conv - 1) * (d_inner + 2 * n_group * d_state)
    n_embd_s = d_state * d_inner
    dims = dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv, head_dim=head_dim,
                d_conv=d_conv, d_state=d_state, n_group=n_group, dt_rank=dt_rank, d_inner=d_inner,
                full_attention_interval=fai)
    return arch, kv, T, layers, dict(n_embd_r=n_embd_r, n_embd_s=n_embd_s, swa=None, dims=dims)


def spec_lfm2():
    """LFM2: gated short-conv blocks + GQA attention blocks; attention layers are the
    ones with head_count_kv[il] != 0."""
    n_embd, n_ff, n_head, head_dim, l_cache = 256, 512, 4, 64, 3
    pattern = [0, 0, 1, 0, 0, 1, 0, 1]   # 1 = attention
    n_layer = len(pattern)
    n_head_kv = [2 if p else 0 for p in pattern]
    kv = common_kv(128000, n_embd, n_layer, n_ff, n_head, n_head_kv, 1e-5)
    kv.update({"shortconv.l_cache": (l_cache, U32), "rope.freq_base": (1e6, F32K)})
    T = [("token_embd.weight", (n_embd, N_VOCAB), F16), ("token_embd_norm.weight", (n_embd,), F32)]
    layers = []
    for il, p in enumerate(pattern):
        b = f"blk.{il}."
        T += [(b + "ffn_norm.weight", (n_embd,), F32),
              (b + "ffn_gate.weight", (n_embd, n_ff), F16),
              (b + "ffn_up.weight", (n_embd, n_ff), F16),
              (b + "ffn_down.weight", (n_ff, n_embd), F16),
              (b + "attn_norm.weight", (n_embd,), F32)]
        if p:
            kvd = head_dim * n_head_kv[il]
            T += [(b + "attn_q_norm.weight", (head_dim,), F32),
                  (b + "attn_k_norm.weight", (head_dim,), F32),
                  (b + "attn_q.weight", (n_embd, n_embd), F16),
                  (b + "attn_k.weight", (n_embd, kvd), F16),
                  (b + "attn_v.weight", (n_embd, kvd), F16),
                  (b + "attn_output.weight", (n_embd, n_embd), F16)]
            layers.append(dict(kind="attn", k=kvd, v=kvd))
        else:
            T += [(b + "shortconv.conv.weight", (l_cache, n_embd), F32),
                  (b + "shortconv.in_proj.weight", (n_embd, 3 * n_embd), F16),
                  (b + "shortconv.out_proj.weight", (n_embd, n_embd), F16)]
            layers.append(dict(kind="recr", k=0, v=0))
    n_embd_r = n_embd * (l_cache - 1)   # n_shortconv_l_cache branch
    n_embd_s = 0                        # ssm_d_state * ssm_d_inner, both 0
    dims = dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv, head_dim=head_dim,
                l_cache=l_cache)
    return "lfm2", kv, T, layers, dict(n_embd_r=n_embd_r, n_embd_s=n_embd_s, swa=None, dims=dims)


def spec_granitehybrid():
    """Granite-4.0-H: Mamba2 layers (head_count_kv[il]==0) + GQA attention layers."""
    n_embd, n_ff, n_head, head_dim = 256, 512, 4, 64
    d_conv, d_state, n_group = 4, 128, 1
    d_inner = 2 * n_embd                 # GGML_ASSERT(2*n_embd == d_inner)
    n_ssm_head = 8                       # ssm.time_step_rank = mamba2 heads (head_dim 64)
    pattern = [0, 0, 0, 1, 0, 0, 0, 1]   # 1 = attention
    n_layer = len(pattern)
    n_head_kv = [2 if p else 0 for p in pattern]
    kv = common_kv(131072, n_embd, n_layer, n_ff, n_head, n_head_kv, 1e-5)
    kv.update({
        "ssm.conv_kernel": (d_conv, U32), "ssm.inner_size": (d_inner, U32),
        "ssm.state_size": (d_state, U32), "ssm.time_step_rank": (n_ssm_head, U32),
        "ssm.group_count": (n_group, U32), "rope.freq_base": (1e4, F32K),
        "attention.key_length": (head_dim, U32), "attention.value_length": (head_dim, U32),
    })
    d_in_proj = 2 * d_inner + 2 * n_group * d_state + n_ssm_head
    T = [("token_embd.weight", (n_embd, N_VOCAB), F16), ("output_norm.weight", (n_embd,), F32)]
    layers = []
    for il, p in enumerate(pattern):
        b = f"blk.{il}."
        T += [(b + "attn_norm.weight", (n_embd,), F32)]
        if not p:
            T += [(b + "ssm_in.weight", (n_embd, d_in_proj), F16),
                  (b + "ssm_conv1d.weight", (d_conv, d_inner + 2 * n_group * d_state), F32),
                  (b + "ssm_conv1d.bias", (d_inner + 2 * n_group * d_state,), F32),
                  (b + "ssm_dt.bias", (n_ssm_head,), F32),
                  (b + "ssm_a", (1, n_ssm_head), F32),
                  (b + "ssm_d", (1, n_ssm_head), F32),
                  (b + "ssm_norm.weight", (d_inner // n_group, n_group), F32),
                  (b + "ssm_out.weight", (d_inner, n_embd), F16)]
            layers.append(dict(kind="recr", k=0, v=0))
        else:
            kvd = head_dim * n_head_kv[il]
            T += [(b + "attn_q.weight", (n_embd, head_dim * n_head), F16),
                  (b + "attn_k.weight", (n_embd, kvd), F16),
                  (b + "attn_v.weight", (n_embd, kvd), F16),
                  (b + "attn_output.weight", (head_dim * n_head, n_embd), F16)]
            layers.append(dict(kind="attn", k=kvd, v=kvd))
        T += [(b + "ffn_norm.weight", (n_embd,), F32),
              (b + "ffn_gate.weight", (n_embd, n_ff), F16),
              (b + "ffn_up.weight", (n_embd, n_ff), F16),
              (b + "ffn_down.weight", (n_ff, n_embd), F16)]
    n_embd_r = (d_conv - 1) * (d_inner + 2 * n_group * d_state)
    n_embd_s = d_state * d_inner
    dims = dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv, head_dim=head_dim,
                d_conv=d_conv, d_state=d_state, n_group=n_group, n_ssm_head=n_ssm_head, d_inner=d_inner)
    return "granitehybrid", kv, T, layers, dict(n_embd_r=n_embd_r, n_embd_s=n_embd_s, swa=None, dims=dims)


def spec_gemma3n():
    """Gemma 3n: iSWA (pattern 4 SWA : 1 full), KV only in the first 20 layers
    (hard-coded n_layer_kv_from_start = 20), per-layer embeddings of fixed width 256,
    AltUp (4) and Laurel (rank 64) - both hard-coded in llama-hparams.h."""
    n_embd, n_ff, n_head, n_head_kv, head_dim, n_layer, n_swa = 128, 256, 2, 1, 64, 22, 512
    n_altup, laurel_rank, n_embd_altup = 4, 64, 256
    kv = common_kv(32768, n_embd, n_layer, n_ff, n_head, n_head_kv)
    kv.update({
        "attention.key_length": (head_dim, U32), "attention.value_length": (head_dim, U32),
        "attention.sliding_window": (n_swa, U32), "rope.freq_base": (1e6, F32K),
        "rope.freq_base_swa": (1e4, F32K),
        # informational only (llama.cpp hard-codes 256 for gemma3n):
        "embedding_length_per_layer_input": (n_embd_altup, U32),
    })
    T = [("token_embd.weight", (n_embd, N_VOCAB), F16),
         ("altup_proj.weight", (n_embd, n_embd, n_altup - 1), F16),
         ("altup_unembd_proj.weight", (n_embd, n_embd, n_altup - 1), F16),
         ("per_layer_token_embd.weight", (n_embd_altup * n_layer, N_VOCAB), F16),
         ("per_layer_model_proj.weight", (n_embd, n_embd_altup * n_layer), F16),
         ("per_layer_proj_norm.weight", (n_embd_altup,), F32),
         ("output_norm.weight", (n_embd,), F32)]
    layers = []
    n_kv_from_start = 20
    for il in range(n_layer):
        b = f"blk.{il}."
        T += [(b + "attn_norm.weight", (n_embd,), F32),
              (b + "attn_q.weight", (n_embd, head_dim * n_head), F16),
              (b + "attn_k.weight", (n_embd, head_dim * n_head_kv), F16),
              (b + "attn_v.weight", (n_embd, head_dim * n_head_kv), F16),
              (b + "attn_output.weight", (head_dim * n_head, n_embd), F16),
              (b + "attn_q_norm.weight", (head_dim,), F32),
              (b + "attn_k_norm.weight", (head_dim,), F32),
              (b + "post_attention_norm.weight", (n_embd,), F32),
              (b + "ffn_norm.weight", (n_embd,), F32),
              (b + "ffn_gate.weight", (n_embd, n_ff), F16),
              (b + "ffn_up.weight", (n_embd, n_ff), F16),
              (b + "ffn_down.weight", (n_ff, n_embd), F16),
              (b + "post_ffw_norm.weight", (n_embd,), F32),
              (b + "inp_gate.weight", (n_embd, n_embd_altup), F16),
              (b + "proj.weight", (n_embd_altup, n_embd), F16),
              (b + "post_norm.weight", (n_embd,), F32),
              (b + "altup_correct_coef.weight", (n_altup, n_altup), F32),
              (b + "altup_correct_scale.weight", (n_embd,), F32),
              (b + "altup_predict_coef.weight", (n_altup, n_altup * n_altup), F32),
              (b + "altup_router.weight", (n_embd, n_altup), F16),
              (b + "altup_router_norm.weight", (n_embd,), F32),
              (b + "laurel_l.weight", (n_embd, laurel_rank), F16),
              (b + "laurel_r.weight", (laurel_rank, n_embd), F16),
              (b + "laurel_post_norm.weight", (n_embd,), F32)]
        swa = (il % 5) < 4            # load_swa_pattern(ml, 5), dense_first = false
        kind = ("swa" if swa else "attn") if il < n_kv_from_start else "shared"
        layers.append(dict(kind=kind, k=head_dim * n_head_kv, v=head_dim * n_head_kv))
    dims = dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv, head_dim=head_dim,
                n_swa=n_swa, n_layer_kv_from_start=n_kv_from_start, n_embd_altup=n_embd_altup)
    return "gemma3n", kv, T, layers, dict(n_embd_r=0, n_embd_s=0, swa=n_swa, dims=dims)


def spec_gemma4():
    """Gemma 4 (E2B-like): explicit bool SWA pattern array, different head dims on SWA vs
    global layers (key_length_swa / key_length), last `shared_kv_layers` layers reuse KV,
    per-layer embeddings of width embedding_length_per_layer_input."""
    n_embd, n_ff, n_head, n_swa = 128, 256, 4, 512
    hd_full, hd_swa, n_epl = 128, 64, 32
    is_swa = [1, 1, 1, 0, 1, 1, 1, 0]
    n_layer = len(is_swa)
    # per-layer KV heads (converter writes an array when num_global_key_value_heads differs)
    n_head_kv = [1 if s else 2 for s in is_swa]
    n_shared = 4                         # n_layer_kv_from_start = 8 - 4 = 4
    kv = common_kv(32768, n_embd, n_layer, n_ff, n_head, n_head_kv)
    kv.update({
        "attention.key_length": (hd_full, U32), "attention.value_length": (hd_full, U32),
        "attention.key_length_swa": (hd_swa, U32), "attention.value_length_swa": (hd_swa, U32),
        "rope.dimension_count": (hd_full, U32), "rope.dimension_count_swa": (hd_swa, U32),
        "attention.sliding_window": (n_swa, U32),
        "attention.sliding_window_pattern": ([bool(x) for x in is_swa], ARR_BOOL),
        "attention.shared_kv_layers": (n_shared, U32),
        "embedding_length_per_layer_input": (n_epl, U32),
        "rope.freq_base": (1e6, F32K), "rope.freq_base_swa": (1e4, F32K),
        "final_logit_softcapping": (30.0, F32K),
    })
    T = [("token_embd.weight", (n_embd, N_VOCAB), F16),
         ("per_layer_token_embd.weight", (n_epl * n_layer, N_VOCAB), F16),
         ("per_layer_model_proj.weight", (n_embd, n_epl * n_layer), F16),
         ("per_layer_proj_norm.weight", (n_epl,), F32),
         ("output_norm.weight", (n_embd,), F32),
         ("rope_freqs.weight", (hd_full // 2,), F32)]
    layers = []
    n_kv_from_start = n_layer - n_shared
    for il in range(n_layer):
        b = f"blk.{il}."
        hd = hd_swa if is_swa[il] else hd_full
        nkv = n_head_kv[il]
        has_kv = il < n_kv_from_start
        T += [(b + "attn_norm.weight", (n_embd,), F32),
              (b + "attn_q.weight", (n_embd, hd * n_head), F16)]
        if has_kv:
            T += [(b + "attn_k.weight", (n_embd, hd * nkv), F16),
                  (b + "attn_v.weight", (n_embd, hd * nkv), F16),
                  (b + "attn_k_norm.weight", (hd,), F32)]
        T += [(b + "attn_output.weight", (hd * n_head, n_embd), F16),
              (b + "attn_q_norm.weight", (hd,), F32),
              (b + "post_attention_norm.weight", (n_embd,), F32),
              (b + "layer_output_scale.weight", (1,), F32),
              (b + "ffn_norm.weight", (n_embd,), F32),
              (b + "ffn_gate.weight", (n_embd, n_ff), F16),
              (b + "ffn_up.weight", (n_embd, n_ff), F16),
              (b + "ffn_down.weight", (n_ff, n_embd), F16),
              (b + "post_ffw_norm.weight", (n_embd,), F32),
              (b + "inp_gate.weight", (n_embd, n_epl), F16),
              (b + "proj.weight", (n_epl, n_embd), F16),
              (b + "post_norm.weight", (n_embd,), F32)]
        kind = ("swa" if is_swa[il] else "attn") if has_kv else "shared"
        layers.append(dict(kind=kind, k=hd * nkv, v=hd * nkv))
    dims = dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv, head_dim_full=hd_full,
                head_dim_swa=hd_swa, n_swa=n_swa, shared_kv_layers=n_shared, n_embd_per_layer=n_epl,
                swa_pattern=is_swa)
    return "gemma4", kv, T, layers, dict(n_embd_r=0, n_embd_s=0, swa=n_swa, dims=dims)


def spec_gptoss():
    """gpt-oss: MoE (experts F16 here; MXFP4 in real files - irrelevant for KV), attention
    sinks, alternating 128-token sliding window (even layers SWA: load_swa_pattern(ml, 2))."""
    n_embd, n_head, n_head_kv, head_dim, n_layer, n_swa = 192, 8, 2, 64, 6, 128
    n_expert, n_expert_used, n_ff_exp = 8, 2, 128
    kv = common_kv(131072, n_embd, n_layer, None, n_head, n_head_kv, 1e-5)
    kv.update({
        "attention.key_length": (head_dim, U32), "attention.value_length": (head_dim, U32),
        "rope.dimension_count": (head_dim, U32), "rope.freq_base": (150000.0, F32K),
        "attention.sliding_window": (n_swa, U32),
        "expert_count": (n_expert, U32), "expert_used_count": (n_expert_used, U32),
        "expert_feed_forward_length": (n_ff_exp, U32),
    })
    T = [("token_embd.weight", (n_embd, N_VOCAB), F16), ("output_norm.weight", (n_embd,), F32),
         ("output.weight", (n_embd, N_VOCAB), F16)]
    layers = []
    for il in range(n_layer):
        b = f"blk.{il}."
        T += [(b + "attn_norm.weight", (n_embd,), F32),
              (b + "post_attention_norm.weight", (n_embd,), F32),
              (b + "attn_q.weight", (n_embd, n_head * head_dim), F16),
              (b + "attn_k.weight", (n_embd, n_head_kv * head_dim), F16),
              (b + "attn_v.weight", (n_embd, n_head_kv * head_dim), F16),
              (b + "attn_q.bias", (n_head * head_dim,), F32),
              (b + "attn_k.bias", (n_head_kv * head_dim,), F32),
              (b + "attn_v.bias", (n_head_kv * head_dim,), F32),
              (b + "attn_output.weight", (n_head * head_dim, n_embd), F16),
              (b + "attn_output.bias", (n_embd,), F32),
              (b + "attn_sinks.weight", (n_head,), F32),
              (b + "ffn_gate_inp.weight", (n_embd, n_expert), F32),
              (b + "ffn_gate_inp.bias", (n_expert,), F32),
              (b + "ffn_gate_exps.weight", (n_embd, n_ff_exp, n_expert), F16),
              (b + "ffn_up_exps.weight", (n_embd, n_ff_exp, n_expert), F16),
              (b + "ffn_down_exps.weight", (n_ff_exp, n_embd, n_expert), F16),
              (b + "ffn_gate_exps.bias", (n_ff_exp, n_expert), F32),
              (b + "ffn_up_exps.bias", (n_ff_exp, n_expert), F32),
              (b + "ffn_down_exps.bias", (n_embd, n_expert), F32)]
        swa = (il % 2) < 1
        layers.append(dict(kind="swa" if swa else "attn", k=head_dim * n_head_kv, v=head_dim * n_head_kv))
    dims = dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv, head_dim=head_dim,
                n_swa=n_swa, n_expert=n_expert, n_expert_used=n_expert_used, n_ff_exp=n_ff_exp)
    return "gpt-oss", kv, T, layers, dict(n_embd_r=0, n_embd_s=0, swa=n_swa, dims=dims)


def spec_deepseek2():
    """DeepSeek-V2/V3 with multi-head latent attention as converted today (src/models/deepseek2.cpp): head_count_kv
    1, key_length = kv_lora_rank + rope dims, the MLA head sizes in key/value_length_mla; K cache only (V is a view
    of it), a leading dense layer, routed plus shared experts."""
    n_embd, n_head, n_layer, n_vocab_ff = 256, 4, 4, 512
    q_lora, kv_lora, rope, nope, v_mla = 96, 128, 32, 64, 64
    n_expert, n_used, n_shared, ff_exp = 8, 2, 1, 64
    kv = common_kv(163840, n_embd, n_layer + 1, n_vocab_ff, n_head, 1)  # + one MTP block, skipped at load
    kv.update({
        "attention.key_length": (kv_lora + rope, U32), "attention.value_length": (kv_lora, U32),
        "attention.key_length_mla": (nope + rope, U32), "attention.value_length_mla": (v_mla, U32),
        "attention.q_lora_rank": (q_lora, U32), "attention.kv_lora_rank": (kv_lora, U32),
        "rope.dimension_count": (rope, U32), "leading_dense_block_count": (1, U32),
        "expert_count": (n_expert, U32), "expert_used_count": (n_used, U32),
        "expert_shared_count": (n_shared, U32), "expert_feed_forward_length": (ff_exp, U32),
        "nextn_predict_layers": (1, U32),
    })
    T = [("token_embd.weight", (n_embd, N_VOCAB), F16), ("output_norm.weight", (n_embd,), F32),
         ("output.weight", (n_embd, N_VOCAB), F16)]
    layers = []
    for il in range(n_layer + 1):
        b = f"blk.{il}."
        T += [(b + "attn_norm.weight", (n_embd,), F32), (b + "attn_q_a_norm.weight", (q_lora,), F32),
              (b + "attn_kv_a_norm.weight", (kv_lora,), F32),
              (b + "attn_q_a.weight", (n_embd, q_lora), F16),
              (b + "attn_q_b.weight", (q_lora, n_head * (nope + rope)), F16),
              (b + "attn_kv_a_mqa.weight", (n_embd, kv_lora + rope), F16),
              (b + "attn_k_b.weight", (nope, kv_lora, n_head), F16),
              (b + "attn_v_b.weight", (kv_lora, v_mla, n_head), F16),
              (b + "attn_output.weight", (n_head * v_mla, n_embd), F16),
              (b + "ffn_norm.weight", (n_embd,), F32)]
        if il < 1:
            T += [(b + "ffn_gate.weight", (n_embd, n_vocab_ff), F16), (b + "ffn_up.weight", (n_embd, n_vocab_ff), F16),
                  (b + "ffn_down.weight", (n_vocab_ff, n_embd), F16)]
        else:
            T += [(b + "ffn_gate_inp.weight", (n_embd, n_expert), F32),
                  (b + "ffn_gate_exps.weight", (n_embd, ff_exp, n_expert), F16),
                  (b + "ffn_up_exps.weight", (n_embd, ff_exp, n_expert), F16),
                  (b + "ffn_down_exps.weight", (ff_exp, n_embd, n_expert), F16),
                  (b + "ffn_gate_shexp.weight", (n_embd, ff_exp * n_shared), F16),
                  (b + "ffn_up_shexp.weight", (n_embd, ff_exp * n_shared), F16),
                  (b + "ffn_down_shexp.weight", (ff_exp * n_shared, n_embd), F16)]
        if il == n_layer:
            T += [(b + "nextn.eh_proj.weight", (2 * n_embd, n_embd), F16), (b + "nextn.enorm.weight", (n_embd,), F32),
                  (b + "nextn.hnorm.weight", (n_embd,), F32), (b + "nextn.shared_head_norm.weight", (n_embd,), F32)]
            continue
        layers.append(dict(kind="attn", k=kv_lora + rope, v=0))
    dims = dict(n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=1, head_dim=kv_lora + rope, n_swa=0)
    return "deepseek2", kv, T, layers, dict(n_embd_r=0, n_embd_s=0, swa=0, dims=dims)


SPECS = {
    "qwen35": lambda: spec_qwen35(False),
    "qwen3next": lambda: spec_qwen35(True),
    "lfm2": spec_lfm2,
    "granitehybrid": spec_granitehybrid,
    "gemma3n": spec_gemma3n,
    "gemma4": spec_gemma4,
    "gpt-oss": spec_gptoss,
    "deepseek2": spec_deepseek2,
}


# --------------------------------------------------------------------------------------
# prediction (mirrors llama-context.cpp / llama-kv-cache*.cpp / llama-memory-recurrent.cpp)
# --------------------------------------------------------------------------------------
def predict(layers, extra, n_ctx, n_seq=1, n_ubatch=512, swa_full=True, flash_attn=False,
            type_k_bytes=2, type_v_bytes=2, kv_unified=False):
    n_ctx_p = pad(n_ctx, 256)                                 # llama-context.cpp: n_ctx = GGML_PAD(n_ctx, 256)
    kv_size = n_ctx_p if kv_unified else pad(n_ctx_p // n_seq, 256)   # n_ctx_seq
    n_stream = 1 if kv_unified else n_seq
    n_swa = extra["swa"]
    if n_swa:
        size_swa = kv_size if swa_full else pad(min(kv_size, n_swa * (n_seq if kv_unified else 1) + n_ubatch), 256)
    else:
        size_swa = None
    v_trans = not flash_attn
    v_max = max(l["v"] for l in layers)                       # n_embd_v_gqa_max() over all layers
    res = dict(kv_size=kv_size, swa_size=size_swa)
    k_base = v_base = k_swa = v_swa = 0
    n_base = n_swa_l = 0
    for l in layers:
        if l["kind"] not in ("attn", "swa"):
            continue
        cells = kv_size if l["kind"] == "attn" else size_swa
        vrow = v_max if v_trans else l["v"]
        kb = type_k_bytes * l["k"] * cells * n_stream
        vb = type_v_bytes * vrow * cells * n_stream
        if l["kind"] == "attn":
            k_base += kb; v_base += vb; n_base += 1
        else:
            k_swa += kb; v_swa += vb; n_swa_l += 1
    res.update(k_base=k_base, v_base=v_base, n_base_layers=n_base,
               k_swa=k_swa, v_swa=v_swa, n_swa_layers=n_swa_l)
    n_recr = sum(1 for l in layers if l["kind"] == "recr")
    rs_rows = max(1, n_seq)                                    # rs_size = max(1, n_seq_max); rows = rs_size * (1 + n_rs_seq), n_rs_seq = 0
    res.update(n_recr_layers=n_recr,
               r_bytes=n_recr * 4 * extra["n_embd_r"] * rs_rows,
               s_bytes=n_recr * 4 * extra["n_embd_s"] * rs_rows)
    return res


# --------------------------------------------------------------------------------------
# GGUF writer
# --------------------------------------------------------------------------------------
def write_gguf(arch_key: str, outdir: str) -> str:
    import gguf
    from gguf import GGUFWriter, GGUFValueType as VT

    arch, kv, T, layers, extra = SPECS[arch_key]()
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{arch_key}.gguf")
    w = GGUFWriter(path, arch)
    w.add_name(f"synthetic-{arch_key}")
    w.add_file_type(1)  # MOSTLY_F16
    for k, (val, t) in kv.items():
        key = f"{arch}.{k}"
        if t == U32:
            w.add_uint32(key, int(val))
        elif t == F32K:
            w.add_float32(key, float(val))
        elif t == BOOL:
            w.add_bool(key, bool(val))
        elif t == STR:
            w.add_string(key, val)
        elif t == ARR_U32:
            w.add_key_value(key, [int(x) for x in val], VT.ARRAY, sub_type=VT.UINT32)
        elif t == ARR_I32:
            w.add_key_value(key, [int(x) for x in val], VT.ARRAY, sub_type=VT.INT32)
        elif t == ARR_BOOL:
            w.add_key_value(key, [bool(x) for x in val], VT.ARRAY, sub_type=VT.BOOL)
        elif t == ARR_F32:
            w.add_key_value(key, [float(x) for x in val], VT.ARRAY, sub_type=VT.FLOAT32)
        else:
            raise ValueError(t)
    toks, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    rng = np.random.default_rng(0)
    for name, shape, dt in T:
        np_shape = tuple(reversed(shape))          # numpy order = reversed ggml order
        if name.endswith("norm.weight") or name.endswith("rope_freqs.weight") or name.endswith("scale.weight"):
            arr = np.ones(np_shape, dtype=np.float32)
        elif name.endswith("ssm_a"):
            arr = -np.ones(np_shape, dtype=np.float32)
        else:
            arr = (rng.standard_normal(np_shape) * 0.02).astype(np.float32)
        if dt == F16:
            arr = arr.astype(np.float16)
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --------------------------------------------------------------------------------------
# loading in a child process
# --------------------------------------------------------------------------------------
LINE_RE = re.compile(
    r"(llama_kv_cache|llama_memory_recurrent|llama_kv_cache_iswa|compute buffer size|output buffer size|"
    r"KV buffer size|RS buffer size|model buffer size|CPU_Mapped|padding V cache|n_ctx|"
    r"error|failed|exception|Segmentation|Aborted|GGML_ASSERT)", re.I)


def child_main(path, n_ctx, n_batch, n_ubatch, swa_full, flash_attn, n_seq=1, kv_unified=0):
    import llama_cpp
    if n_seq > 1 or kv_unified:
        # llama_cpp.Llama() does not expose n_seq_max (except via embedding=True), so use
        # the C API for multi-sequence checks; everything else as Llama() would set it.
        from llama_cpp import _logger
        _logger.set_verbose(True)
        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, n_batch, n_ubatch, n_seq
        cp.n_threads = cp.n_threads_batch = 1
        cp.swa_full, cp.kv_unified = bool(swa_full), bool(kv_unified)
        cp.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
                              else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        ctx = llama_cpp.llama_init_from_model(model, cp)
        sys.stderr.flush()
        print("CHILD_OK" if ctx else "CHILD_CTX_FAILED", flush=True)
        if ctx:
            llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
        return
    llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch,
                          verbose=True, n_threads=1, n_threads_batch=1,
                          swa_full=bool(swa_full), flash_attn=bool(flash_attn), use_mmap=True)
    sys.stderr.flush()
    print("CHILD_OK", flush=True)
    del llm


def parse_log(text):
    out = {}
    # llama_kv_cache: size =   64.00 MiB (  2048 cells,   2 layers,  1/1 seqs), K (f16):   32.00 MiB, V (f16):   32.00 MiB
    kvs = re.findall(r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,.*?K \((\w+)\):\s*([\d.]+) MiB, V \((\w+)\):\s*([\d.]+) MiB", text)
    out["kv"] = [dict(total=float(a), cells=int(b), layers=int(c), k=float(e), v=float(g)) for a, b, c, d, e, f, g in kvs]
    rs = re.findall(r"llama_memory_recurrent: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,.*?R \((\w+)\):\s*([\d.]+) MiB, S \((\w+)\):\s*([\d.]+) MiB", text)
    out["rs"] = [dict(total=float(a), cells=int(b), r=float(e), s=float(g), r_type=d, s_type=f) for a, b, c, d, e, f, g in rs]
    cb = re.findall(r"(\S+) compute buffer size =\s*([\d.]+) MiB", text)
    out["compute"] = [(a, float(b)) for a, b in cb]
    ob = re.findall(r"(\S+)\s+output buffer size =\s*([\d.]+) MiB", text)
    out["output"] = [(a, float(b)) for a, b in ob]
    mb = re.findall(r"(\S+) model buffer size =\s*([\d.]+) MiB", text)
    out["model"] = [(a, float(b)) for a, b in mb]
    return out


def run_child(path, a):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", path, "--n-ctx", str(a.n_ctx),
           "--n-batch", str(a.n_batch), "--n-ubatch", str(a.n_ubatch), "--swa-full", str(a.swa_full),
           "--flash-attn", str(a.flash_attn), "--n-seq", str(a.n_seq), "--kv-unified", str(a.kv_unified)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return p.returncode, p.stdout + p.stderr


def fmt2(nbytes):
    return f"{nbytes / MiB:.2f}"


def report(arch_key, a):
    path = write_gguf(arch_key, a.outdir)
    arch, kv, T, layers, extra = SPECS[arch_key]()
    pred = predict(layers, extra, a.n_ctx, a.n_seq, a.n_ubatch, bool(a.swa_full), bool(a.flash_attn),
                   kv_unified=bool(a.kv_unified))
    rc, log = run_child(path, a)
    got = parse_log(log)
    lines = [l for l in log.splitlines() if LINE_RE.search(l)
             and not re.search(r"layer +\d+: (dev|filtered|skipped)|, layer +\d+: dev|UnicodeDecodeError|Exception ignored", l)]
    # the iSWA caches are printed base first, then SWA; plain/hybrid caches print one line
    res = dict(arch=arch_key, rc=rc, ok="CHILD_OK" in log, dims=extra["dims"],
               n_embd_r=extra["n_embd_r"], n_embd_s=extra["n_embd_s"], pred=pred, got=got)
    pk_base = fmt2(pred["k_base"]); pv_base = fmt2(pred["v_base"])
    checks = []
    kvl = got["kv"]
    if extra["swa"]:
        if len(kvl) >= 2:
            checks.append(("kv_base K", fmt2(pred["k_base"]), f"{kvl[0]['k']:.2f}"))
            checks.append(("kv_base V", fmt2(pred["v_base"]), f"{kvl[0]['v']:.2f}"))
            checks.append(("kv_base cells", str(pred["kv_size"]), str(kvl[0]["cells"])))
            checks.append(("kv_swa K", fmt2(pred["k_swa"]), f"{kvl[1]['k']:.2f}"))
            checks.append(("kv_swa V", fmt2(pred["v_swa"]), f"{kvl[1]['v']:.2f}"))
            checks.append(("kv_swa cells", str(pred["swa_size"]), str(kvl[1]["cells"])))
            checks.append(("kv_swa layers", str(pred["n_swa_layers"]), str(kvl[1]["layers"])))
            checks.append(("kv_base layers", str(pred["n_base_layers"]), str(kvl[0]["layers"])))
    else:
        if kvl:
            checks.append(("kv K", pk_base, f"{kvl[0]['k']:.2f}"))
            checks.append(("kv V", pv_base, f"{kvl[0]['v']:.2f}"))
            checks.append(("kv cells", str(pred["kv_size"]), str(kvl[0]["cells"])))
            checks.append(("kv layers", str(pred["n_base_layers"]), str(kvl[0]["layers"])))
    if got["rs"]:
        checks.append(("rs R", fmt2(pred["r_bytes"]), f"{got['rs'][0]['r']:.2f}"))
        checks.append(("rs S", fmt2(pred["s_bytes"]), f"{got['rs'][0]['s']:.2f}"))
    res["checks"] = checks
    res["all_match"] = bool(checks) and all(p == g for _, p, g in checks)
    res["log_lines"] = lines
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch", nargs="?")
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--load", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--n-ubatch", type=int, default=512)
    ap.add_argument("--swa-full", type=int, default=1)
    ap.add_argument("--flash-attn", type=int, default=0)
    ap.add_argument("--n-seq", type=int, default=1, help=">1 uses the C API (n_seq_max)")
    ap.add_argument("--kv-unified", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.child:
        child_main(a.child, a.n_ctx, a.n_batch, a.n_ubatch, a.swa_full, a.flash_attn, a.n_seq, a.kv_unified)
        return
    if not a.arch or not a.outdir:
        ap.error("ARCH and OUTDIR are required")
    archs = ARCHS if a.arch == "all" else [a.arch]
    for ak in archs:
        if ak not in SPECS:
            ap.error(f"unknown arch {ak}; choose from {ARCHS}")
        if not a.load:
            print(write_gguf(ak, a.outdir))
            continue
        r = report(ak, a)
        if a.json:
            print(json.dumps(r))
            continue
        print(f"=== {ak}: rc={r['rc']} loaded={r['ok']} all_match={r['all_match']}")
        print(f"    dims: {r['dims']}")
        print(f"    n_embd_r={r['n_embd_r']} n_embd_s={r['n_embd_s']}")
        p = r["pred"]
        print(f"    predicted bytes: K_base={p['k_base']} V_base={p['v_base']} K_swa={p['k_swa']} V_swa={p['v_swa']} "
              f"R={p['r_bytes']} S={p['s_bytes']} (cells base={p['kv_size']} swa={p['swa_size']})")
        for name, pv, gv in r["checks"]:
            print(f"    {name:16s} predicted {pv:>10s}  llama.cpp {gv:>10s}  {'OK' if pv == gv else 'MISMATCH'}")
        for l in r["log_lines"]:
            print("    | " + l)


if __name__ == "__main__":
    main()
