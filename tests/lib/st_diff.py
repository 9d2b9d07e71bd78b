#!/usr/bin/env python3
"""Largest absolute difference between the tensors of two safetensors files (F32 only):
st_diff.py A B prints it and exits 1 when the files hold different names or shapes."""
import json
import struct
import sys
from array import array


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}, not F32")
        a = array("f")
        b, e = t["data_offsets"]
        a.frombytes(data[b:e])
        out[name] = (tuple(t["shape"]), a)
    return out


a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
if a.keys() != b.keys():
    sys.exit(f"different tensors: {sorted(a.keys() ^ b.keys())[:5]}")
worst, where = 0.0, ""
for name in a:
    if a[name][0] != b[name][0]:
        sys.exit(f"{name}: shape {a[name][0]} against {b[name][0]}")
    for x, y in zip(a[name][1], b[name][1]):
        if abs(x - y) > worst or x != x or y != y:
            worst, where = abs(x - y) if x == x and y == y else float("inf"), name
print(f"{worst:.3g} {where}")
