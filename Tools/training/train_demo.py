"""Trains the embedded demo model: a small MoVQ (spatially conditional
normalization in the decoder, multichannel quantization with c = 2 chunks of
one shared 256-entry codebook) on Fashion-MNIST padded to 32x32.

Data: Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
Writes Tools/out/demo_movq/{diffusion_pytorch_model.safetensors,config.json},
the demo images (one held-out test image per class) and prints held-out PSNR.

Run: $(Tools/setup_venv.sh) Tools/training/train_demo.py [--minutes 15]
Then: swift run -c release movq convert Tools/out/demo_movq -o Sources/MoVQDemo/Resources/demo.mvq
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # Tools/
sys.path.insert(0, os.path.join(TOOLS, "reference"))
from movq_reference import MultichannelQuantizer, build_vqmodel, decode_zq, encode_latent

DATA = "/usr/share/datasets/fashion-mnist"
HERE = TOOLS


def load_idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    if name.find("labels") >= 0:
        return np.frombuffer(raw, np.uint8, offset=8)
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def to_tensor(images):
    x = np.pad(images, ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 127.5 - 1
    return torch.from_numpy(x)[:, None].repeat(1, 3, 1, 1)


def psnr(a, b):
    """PSNR in dB of uint8-quantized images in [-1, 1], per image."""
    qa = ((a.clamp(-1, 1) + 1) / 2 * 255).round()
    qb = ((b.clamp(-1, 1) + 1) / 2 * 255).round()
    mse = ((qa - qb) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(255 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "demo_movq"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    train = to_tensor(load_idx("train-images-idx3-ubyte.gz"))
    test_images, test_labels = load_idx("t10k-images-idx3-ubyte.gz"), load_idx("t10k-labels-idx1-ubyte.gz")
    test = to_tensor(test_images)

    chunks, dim, codes = 2, 4, 256
    model = build_vqmodel([32, 64, 64], 1, latent_channels=chunks * dim, vq_embed_dim=chunks * dim,
                          num_vq_embeddings=codes)
    model.quantize = MultichannelQuantizer(codes, dim, chunks)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    usage = torch.zeros(codes)
    start, step = time.time(), 0
    while time.time() - start < args.minutes * 60:
        idx = torch.randint(0, len(train), (args.batch,))
        x = train[idx]
        z = encode_latent(model, x)
        if step == 0:  # initialize the codebook from encoder outputs
            with torch.no_grad():
                v = z.reshape(args.batch, chunks, dim, -1).permute(0, 1, 3, 2).reshape(-1, dim)
                model.quantize.embedding.weight.copy_(v[torch.randperm(len(v))[:codes]])
        zq, vq_loss, ids = model.quantize(z)
        y = decode_zq(model, zq)
        rec = (y - x).abs().mean() + ((y - x) ** 2).mean()
        loss = rec + vq_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        usage += torch.bincount(ids.flatten(), minlength=codes).float()
        step += 1
        if step % 100 == 0:
            # Restart dead codes at random current latents.
            with torch.no_grad():
                dead = usage < 1
                if dead.any():
                    v = z.detach().reshape(args.batch, chunks, dim, -1).permute(0, 1, 3, 2).reshape(-1, dim)
                    model.quantize.embedding.weight[dead] = v[torch.randint(0, len(v), (int(dead.sum()),))]
                usage.zero_()
            lr = 1e-3 * (0.5 + 0.5 * math.cos(math.pi * min(1.0, (time.time() - start) / (args.minutes * 60))))
            for g in opt.param_groups:
                g["lr"] = lr
            print(f"step {step} rec {rec.item():.4f} vq {vq_loss.item():.4f} dead {int(dead.sum())} "
                  f"{time.time() - start:.0f}s", flush=True)

    model.eval()
    with torch.no_grad():
        held = test[:1000]
        ps = []
        for i in range(0, len(held), 100):
            xb = held[i:i + 100]
            yb = decode_zq(model, model.quantize.lookup(model.quantize.indices(encode_latent(model, xb))))
            ps.append(psnr(yb, xb))
        ps = torch.cat(ps)
    print(f"held-out PSNR over {len(ps)} Fashion-MNIST test images: mean {ps.mean():.2f} dB, "
          f"median {ps.median():.2f} dB ({step} steps)")

    os.makedirs(args.out, exist_ok=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(args.out, "diffusion_pytorch_model.safetensors"))
    cfg = dict(model.config)
    cfg["multichannel_chunks"] = chunks
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, sort_keys=True, default=list)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"heldout_psnr_mean": float(ps.mean()), "heldout_psnr_median": float(ps.median()),
                   "heldout_images": len(ps), "steps": step}, f, indent=1)
    # Demo images: the first held-out test image of each class (grey PNG, 32x32).
    img_dir = os.path.join(HERE, "..", "Sources", "movq", "Resources", "demo_images")
    os.makedirs(img_dir, exist_ok=True)
    for cls in range(10):
        i = int(np.nonzero(test_labels == cls)[0][0])
        Image.fromarray(np.pad(test_images[i], 2)).save(os.path.join(img_dir, f"class{cls}.png"))


if __name__ == "__main__":
    main()
