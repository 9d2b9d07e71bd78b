#!/usr/bin/env python3
"""An independent Llama forward in PyTorch, written from Hugging Face's LlamaForCausalLM
conventions (nn.Linear weights (out, in), rotate_half rotary embedding, RMSNorm in float32,
SwiGLU, grouped key/value heads repeated per query group), for comparing lmforge's files and
arithmetic. Usage: llama_torch.py MODEL_DIR TOKENS.bin T [GREEDY_PROMPT_IDS N_NEW]
Prints one JSON object: the mean cross-entropy of tokens[0:T] predicting tokens[1:T+1], the
logits of the last position, and (optionally) the greedy continuation of the prompt."""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = bytearray(data[a:b])
        x = torch.frombuffer(raw, dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name] = x.to(torch.float32)
    return out


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        w = read_safetensors(single)
    else:
        index = json.load(open(os.path.join(model_dir, "model.safetensors.index.json")))
        w = {}
        for f in sorted(set(index["weight_map"].values())):
            w.update(read_safetensors(os.path.join(model_dir, f)))
    return cfg, w


def forward(cfg, w, ids):
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    NKV = cfg.get("num_key_value_heads") or NH
    hs, T = C // NH, len(ids)
    eps, theta = cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rotate_half(x):
        return torch.cat((-x[..., hs // 2:], x[..., : hs // 2]), dim=-1)

    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().float(), emb.sin().float()
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, NH, hs).transpose(0, 1)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, NKV, hs).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, NKV, hs).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=0)
        v = v.repeat_interleave(NH // NKV, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hs) + mask, dim=-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + y @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T)
        x = x + (g * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def main():
    model_dir, tokens, T = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg, w = load(model_dir)
    raw = open(tokens, "rb").read()
    version, count = struct.unpack("<ii", raw[4:12])
    fmt = "<%d%s" % (count, "H" if version == 1 else "I")
    toks = list(struct.unpack(fmt, raw[1024:]))
    with torch.no_grad():
        logits = forward(cfg, w, toks[:T])
        loss = torch.nn.functional.cross_entropy(logits.double(), torch.tensor(toks[1:T + 1]))
        out = {"loss": loss.item(), "last_logits": logits[-1].tolist()}
        if len(sys.argv) > 5:
            ids = [int(i) for i in sys.argv[4].split(",")]
            for _ in range(int(sys.argv[5])):
                ids.append(int(forward(cfg, w, ids)[-1].argmax()))
            out["greedy"] = ids
    print(json.dumps(out))


if __name__ == "__main__":
    main()
