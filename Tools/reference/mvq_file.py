"""Reads a packed .mvq file (Docs/FORMAT.md) into NumPy arrays: header dict
and {name: float32 array} (fp16 widened, int8 dequantized)."""
import json
import struct

import numpy as np


def read_mvq(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"MOVQPACK", "not a packed MoVQ model"
    (hlen,) = struct.unpack_from("<Q", raw, 16)
    header = json.loads(raw[32:32 + hlen])
    tensors = {}
    kinds = {"f32": np.float32, "f16": np.float16, "i8": np.int8}
    for e in header["tensors"]:
        a = np.frombuffer(raw, kinds[e["dtype"]], int(np.prod(e["shape"])), e["offset"]).reshape(e["shape"])
        tensors[e["name"]] = a
    out = {}
    for e in header["tensors"]:
        a = tensors[e["name"]].astype(np.float32)
        if e.get("scales"):
            a = a * tensors[e["scales"]].reshape([-1] + [1] * (a.ndim - 1))
        out[e["name"]] = a
    return header, out
