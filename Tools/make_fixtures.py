"""Builds the small random-weight reference models and their PyTorch outputs
that the Swift tests compare against. Output: Tests/MoVQTests/Fixtures/.

Run: $(Tools/setup_venv.sh) Tools/make_fixtures.py
"""
import json
import os
import pickle
import zipfile
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from movq_reference import (MultichannelQuantizer, build_vqmodel, decode_zq, encode_latent,
                            randomize_, to_original_layout)

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "MoVQTests", "Fixtures")


def save_npy(folder, name, t):
    np.save(os.path.join(folder, name), t.detach().cpu().numpy())


def save_diffusers(model, folder):
    os.makedirs(folder, exist_ok=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(dict(model.config), f, indent=1, sort_keys=True, default=list)


def references(model, quantizer, folder, image_hw, seed):
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand((2, 3) + image_hw, generator=g) * 2 - 1
    with torch.no_grad():
        z = encode_latent(model, x)
        idx = quantizer(z)
        dec_latent = decode_zq(model, z)
        dec_idx = decode_zq(model, lookup(model, quantizer, idx))
        z1 = torch.randn((1, z.shape[1], 1, 1), generator=g)
        dec_1x1 = decode_zq(model, z1)
    save_npy(folder, "image.npy", x)
    save_npy(folder, "latent.npy", z)
    np.save(os.path.join(folder, "indices.npy"), idx.numpy().astype(np.int64))
    save_npy(folder, "decoded_latent.npy", dec_latent)
    save_npy(folder, "decoded_indices.npy", dec_idx)
    save_npy(folder, "latent_1x1.npy", z1)
    save_npy(folder, "decoded_1x1.npy", dec_1x1)


def lookup(model, quantizer, idx):
    if isinstance(model.quantize, MultichannelQuantizer):
        return model.quantize.lookup(idx)
    b, _, h, w = idx.shape
    return model.quantize.get_codebook_entry(idx.reshape(b, -1), (b, h, w, model.config.vq_embed_dim))


def diffusers_indices(model):
    def f(z):
        _, _, (_, _, idx) = model.quantize(z)
        return idx.reshape(z.shape[0], 1, z.shape[2], z.shape[3])
    return f


class _Pwn:
    """Unpickling this would run a shell command; the Swift reader must refuse."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/movq_pwned",))


def hostile_checkpoints(folder):
    os.makedirs(folder, exist_ok=True)
    # A torch-style zip whose data.pkl calls os.system.
    with zipfile.ZipFile(os.path.join(folder, "hostile.ckpt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps({"state_dict": _Pwn()}, protocol=2))
        z.writestr("archive/version", "3\n")
    # A pre-1.6 (non-zip) torch pickle.
    with open(os.path.join(folder, "legacy.pt"), "wb") as f:
        pickle.dump({"x": 1}, f, protocol=2)


def main():
    torch.manual_seed(0)
    # A: MoVQ with spatial norm, c = 1, odd latent channels; both layouts.
    a = build_vqmodel([32, 64], 1, latent_channels=3, vq_embed_dim=3, num_vq_embeddings=37).eval()
    randomize_(a, 1)
    folder = os.path.join(OUT, "tiny_movq")
    save_diffusers(a, os.path.join(folder, "diffusers"))
    sd = to_original_layout(a.state_dict())
    sd["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 1, 1)  # training-only, dropped on import
    torch.save({"state_dict": sd, "epoch": 3}, os.path.join(folder, "original.ckpt"))
    references(a, diffusers_indices(a), folder, (10, 6), 1)

    # B: plain VQGAN (group norm), 8 groups, channels not multiples of 16.
    b = build_vqmodel([24, 40], 1, latent_channels=3, vq_embed_dim=3, num_vq_embeddings=19,
                      norm_num_groups=8, norm_type="group").eval()
    randomize_(b, 2)
    folder = os.path.join(OUT, "tiny_vqgan")
    save_diffusers(b, os.path.join(folder, "diffusers"))
    references(b, diffusers_indices(b), folder, (6, 10), 2)

    # C: multichannel MoVQ (c = 2 chunks of d = 2), 3 levels, bare state dict.
    c = build_vqmodel([32, 32, 64], 1, latent_channels=4, vq_embed_dim=4, num_vq_embeddings=29).eval()
    q = MultichannelQuantizer(29, 2, 2)
    c.quantize = q
    randomize_(c, 3)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.randn(29, 2) * 0.5)
    folder = os.path.join(OUT, "tiny_multichannel")
    os.makedirs(folder, exist_ok=True)
    torch.save(to_original_layout(c.state_dict()), os.path.join(folder, "original.ckpt"))
    references(c, q.indices, folder, (12, 8), 3)
    hostile_checkpoints(os.path.join(OUT, "bad"))
    print("fixtures written to", os.path.abspath(OUT))


if __name__ == "__main__":
    main()
