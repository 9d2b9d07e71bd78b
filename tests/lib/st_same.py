#!/usr/bin/env python3
"""Whether two Hugging Face weight directories (model.safetensors, or the files of
model.safetensors.index.json) hold the same tensors: names, dtypes, shapes and bytes.
st_same.py DIR_A DIR_B prints the counts and exits 1 on any difference."""
import json
import os
import struct
import sys


def tensors(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        with open(os.path.join(d, fn), "rb") as f:
            raw = f.read()
        n = struct.unpack("<Q", raw[:8])[0]
        for k, t in json.loads(raw[8:8 + n]).items():
            if k != "__metadata__":
                a, b = t["data_offsets"]
                out[k] = (t["dtype"], t["shape"], raw[8 + n + a:8 + n + b])
    return out


a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
print("%d and %d tensors, %d differ %s" % (len(a), len(b), len(diff), diff[:3]))
sys.exit(1 if diff or not a else 0)
