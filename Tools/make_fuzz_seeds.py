"""Writes the small seed inputs of the fuzz harnesses into Fuzz/seeds/
(committed; Fuzz/run.sh needs no Python). Packed seeds are made by
`movq convert` of Tests/MoVQTests/Fixtures/prior_gpt (see Fuzz/README.md).

Run: $(Tools/setup_venv.sh) Tools/make_fuzz_seeds.py
"""
import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fuzz", "seeds")


def out(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def main():
    g = torch.Generator().manual_seed(0)
    # torch: small state dicts (contiguous, strided view, fp16, nested state_dict) and their pickles.
    w = torch.randn(4, 3, generator=g)
    cases = {
        "plain": {"conv.weight": torch.randn(2, 3, 1, 1, generator=g), "conv.bias": torch.zeros(2)},
        "strided": {"t": w.t(), "slice": w[1:3]},
        "half": {"h": torch.randn(5, generator=g).half(), "b": torch.randn(3, generator=g).bfloat16()},
        "nested": {"state_dict": {"a": torch.ones(2, 2)}, "epoch": 3, "lr": 0.5, "tags": ["x", ("y", None)]},
    }
    for name, obj in cases.items():
        buf = io.BytesIO()
        torch.save(obj, buf)
        out("torch", f"{name}.pt", buf.getvalue())
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
            pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
            out("pickle", f"{name}.pkl", z.read(pkl))
    # safetensors: two tiles of f32/f16 data, with metadata.
    tensors = [("a", "F32", [2, 2], np.arange(4, dtype="<f4").tobytes()), ("b", "F16", [3], np.ones(3, dtype="<f2").tobytes())]
    header, body = {"__metadata__": {"format": "pt"}}, b""
    for n, dt, shape, raw in tensors:
        header[n] = {"dtype": dt, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header).encode()
    out("safetensors", "two.safetensors", struct.pack("<Q", len(h)) + h + body)
    # npy: the dtypes and shapes the CLI reads, versions 1.0 and 2.0.
    arrays = {"latent": np.random.default_rng(0).standard_normal((1, 4, 2, 3)).astype("<f4"),
              "indices": np.arange(12, dtype="<i8").reshape(1, 3, 4), "u8": np.arange(6, dtype="u1"),
              "f16": np.ones((2, 2), dtype="<f2"), "bool": np.array([True, False])}
    for n, a in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, version=(2, 0) if n == "u8" else (1, 0))
        out("npy", f"{n}.npy", buf.getvalue())
    # png: every color type and depth the reader supports, all five filters (optimize).
    rng = np.random.default_rng(1)
    imgs = {"grey": Image.fromarray(rng.integers(0, 255, (5, 7), dtype=np.uint8), "L"),
            "rgb": Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8), "RGB"),
            "rgba": Image.fromarray(rng.integers(0, 255, (4, 4, 4), dtype=np.uint8), "RGBA"),
            "la": Image.fromarray(rng.integers(0, 255, (3, 5, 2), dtype=np.uint8), "LA"),
            "grey16": Image.fromarray(rng.integers(0, 65535, (4, 3), dtype=np.uint16))}
    imgs["palette"] = imgs["rgb"].convert("P", palette=Image.ADAPTIVE, colors=8)
    for n, im in imgs.items():
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        out("png", f"{n}.png", buf.getvalue())
    # inflate: zlib streams with stored, fixed and dynamic blocks.
    text = b"MoVQ MoVQ MoVQ spatially conditional normalization " * 20 + bytes(range(256))
    for level in (0, 1, 6, 9):
        out("inflate", f"level{level}.z", zlib.compress(text, level))
    out("inflate", "empty.z", zlib.compress(b""))


if __name__ == "__main__":
    main()
