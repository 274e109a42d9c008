"""Builds the Kandinsky 2.x-shaped MoVQ (config from MOVQ.md: 67.8M params) with
random weights, the subject of speed benchmarks (speed does not depend on
weight values). Writes Tools/out/kandinsky_random/diffusers (safetensors +
config.json) and Tools/out/kandinsky_random/movq_original.ckpt (original
Kandinsky key layout), plus a random latent for 256x256 output.

Run: $(Tools/setup_venv.sh) Tools/make_kandinsky_random.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from movq_reference import build_vqmodel, to_original_layout
from make_fixtures import save_diffusers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "kandinsky_random")


def main():
    torch.manual_seed(0)
    m = build_vqmodel([128, 256, 256, 512], 2, latent_channels=4, vq_embed_dim=4, num_vq_embeddings=16384).eval()
    n = sum(p.numel() for p in m.parameters())
    print(f"Kandinsky-shaped movq: {n:,} parameters")
    save_diffusers(m, os.path.join(OUT, "diffusers"))
    torch.save({"state_dict": to_original_layout(m.state_dict())}, os.path.join(OUT, "movq_original.ckpt"))
    for size in (256, 512, 1024):
        np.save(os.path.join(OUT, f"latent_{size}.npy"), torch.randn(1, 4, size // 8, size // 8).numpy())
    print("wrote", OUT)


if __name__ == "__main__":
    main()
