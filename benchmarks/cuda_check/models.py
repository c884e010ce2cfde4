"""Synthetic Llama-2-7B-shaped models for the CUDA check (written on the device machine)."""
import sys
from fitcheck.calibration.synth import SynthModel, write_synthetic

SHAPE = dict(n_layer=32, n_embd=4096, n_head=32, n_head_kv=32, n_ff=11008, n_vocab=32000)
MODELS = {
    "l7b-q4_0": SynthModel(weight_type="Q4_0", seed=71, **SHAPE),
    "l7b-q8_0": SynthModel(weight_type="Q8_0", seed=72, **SHAPE),
    "l7b-q4_k_m": SynthModel(weight_type="Q4_K", type_overrides={"attn_v": "Q6_K", "ffn_down": "Q6_K"}, seed=73, **SHAPE),
    "l7b-f16": SynthModel(weight_type="F16", seed=74, **SHAPE),
    # a Qwen3-30B-A3B-like MoE (48 layers, 128 experts of width 768, 8 routed), Q4_0: ~17 GB, ~1.7 GB read per token
    "moe30b-a3b-q4_0": SynthModel(n_layer=48, n_embd=2048, n_head=32, n_head_kv=4, n_ff=768, n_vocab=151936,
                                  n_expert=128, n_expert_used=8, weight_type="Q4_0", seed=75),
}

if __name__ == "__main__":
    for name in sys.argv[2:]:
        write_synthetic(f"{sys.argv[1]}/{name}.gguf", MODELS[name])
