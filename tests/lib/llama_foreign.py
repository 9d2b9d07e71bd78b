#!/usr/bin/env python3
"""A small Llama checkpoint laid out as transformers' save_pretrained writes one, written without
lmforge: the tests' stand-in for a downloaded Hugging Face Llama directory (Llama 3.2 style).
Usage: llama_foreign.py OUT_DIR [tied|untied] [tokenizer]
bf16 tensors in two shards (model-0000k-of-00002.safetensors, in name order) with
model.safetensors.index.json and the `{"format": "pt"}` metadata; a config.json with the keys
transformers writes (eos_token_id a list, torch_dtype, transformers_version, pretraining_tp, ...);
generation_config.json; with `tied`, tie_word_embeddings true and no lm_head.weight.
With `tokenizer`, a Llama 3-style tokenizer.json too: byte-level BPE over the 256 bytes (id =
byte value), <|begin_of_text|> (256), <|end_of_text|> (257) and reserved specials up to id 299,
and a TemplateProcessing post-processor that puts <|begin_of_text|> in front of a text.
Seeded: the same bytes every run. Standard library only."""
import json
import os
import random
import struct
import sys

out = sys.argv[1]
tied = len(sys.argv) > 2 and sys.argv[2] == "tied"
os.makedirs(out, exist_ok=True)
V, D, F, L, H, KV = 300, 64, 128, 2, 4, 2
HD = D // H
cfg = {"_name_or_path": "tiny-llama", "architectures": ["LlamaForCausalLM"], "attention_bias": False,
       "attention_dropout": 0.0, "bos_token_id": 256, "eos_token_id": [257, 258], "head_dim": HD,
       "hidden_act": "silu", "hidden_size": D, "initializer_range": 0.02, "intermediate_size": F,
       "max_position_embeddings": 128, "mlp_bias": False, "model_type": "llama",
       "num_attention_heads": H, "num_hidden_layers": L, "num_key_value_heads": KV,
       "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0,
       "tie_word_embeddings": tied, "torch_dtype": "bfloat16", "transformers_version": "4.45.0",
       "use_cache": True, "vocab_size": V}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
with open(os.path.join(out, "generation_config.json"), "w") as f:
    json.dump({"bos_token_id": 256, "do_sample": True, "eos_token_id": [257, 258],
               "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0"}, f, indent=2)

rng = random.Random(0)
shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
for i in range(L):
    p = "model.layers.%d." % i
    shapes.update({p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (KV * HD, D),
                   p + "self_attn.v_proj.weight": (KV * HD, D), p + "self_attn.o_proj.weight": (D, D),
                   p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D),
                   p + "mlp.down_proj.weight": (D, F), p + "input_layernorm.weight": (D,),
                   p + "post_attention_layernorm.weight": (D,)})
if not tied:
    shapes["lm_head.weight"] = (V, D)


def bf16(x):
    """float -> bfloat16 bits, rounded to nearest even"""
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    return (u + 0x7FFF + ((u >> 16) & 1)) >> 16


def tensor(name, shape):
    n = 1
    for s in shape:
        n *= s
    if len(shape) == 1:  # norms near 1
        vals = [1.0 + rng.gauss(0, 0.1) for _ in range(n)]
    else:
        sd = 0.02 if "embed" in name or "lm_head" in name else 0.05
        vals = [rng.gauss(0, sd) for _ in range(n)]
    return struct.pack("<%dH" % n, *[bf16(v) for v in vals])


names = sorted(shapes)
data = {n: tensor(n, shapes[n]) for n in names}
half = len(names) // 2
weight_map, total = {}, 0
for k, group in enumerate([names[:half], names[half:]]):
    fn = "model-%05d-of-00002.safetensors" % (k + 1)
    hdr, off = {"__metadata__": {"format": "pt"}}, 0
    for n in group:
        hdr[n] = {"dtype": "BF16", "shape": list(shapes[n]), "data_offsets": [off, off + len(data[n])]}
        off += len(data[n])
        weight_map[n] = fn
    total += off
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, fn), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(data[n] for n in group))
with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def byte_level(b):
    """GPT-2's byte-level spelling of one byte"""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if b in printable:
        return chr(b)
    return chr(256 + [x for x in range(256) if x not in printable].index(b))


if len(sys.argv) > 3 and sys.argv[3] == "tokenizer":
    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + \
        ["<|reserved_special_token_%d|>" % k for k in range(V - 258)]
    added = [{"id": 256 + k, "content": s_, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for k, s_ in enumerate(specials)]
    bos = {"id": "<|begin_of_text|>", "type_id": 0}
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": None,
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                            "use_regex": True},
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": bos}, {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [{"SpecialToken": bos}, {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                                      {"Sequence": {"id": "B", "type_id": 1}}],
                             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>",
                                                                      "ids": [256],
                                                                      "tokens": ["<|begin_of_text|>"]}}},
          "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None,
                    "continuing_subword_prefix": None, "end_of_word_suffix": None,
                    "fuse_unk": False, "byte_fallback": False,
                    "vocab": {byte_level(b): b for b in range(256)}, "merges": []}}
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=2)
