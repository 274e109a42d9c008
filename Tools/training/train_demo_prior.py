"""Trains the embedded demo prior: a class-conditional MaskGIT
(Tools/reference/maskgit_reference.py, post-LN) on the demo MoVQ's Fashion-MNIST
tokens (8x8 positions x 2 indices of a 256-entry codebook), and a small
CNN classifier used to judge how recognisable sampled classes are.

Data: Debian package dataset-fashion-mnist. Tokens come from encoding the
images with the packed demo model (Sources/MoVQDemo/Resources/demo.mvq).
Writes Tools/out/demo_prior/{prior.pt, prior.json} and
Tools/out/classifier.pt.

Run: $(Tools/setup_venv.sh) Tools/training/train_demo_prior.py [--minutes 15]
Then: swift run -c release movq convert Tools/out/demo_prior/prior.pt --precision fp16 -o Sources/MoVQDemo/Resources/demo-prior.mvq
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # Tools/
sys.path.insert(0, os.path.join(TOOLS, "reference"))
from maskgit_reference import MaskGITTransformer, default_config
from movq_reference import MultichannelQuantizer, build_vqmodel, encode_latent
from mvq_file import read_mvq
from train_demo import load_idx, to_tensor

HERE = TOOLS
DEMO = os.path.join(HERE, "..", "Sources", "movq", "Resources", "demo.mvq")


def demo_tokens(images):
    """[B, 28, 28] uint8 -> [B, 64, 2] token ids from the packed demo model."""
    header, w = read_mvq(DEMO)
    c = header["config"]
    dim = c["codebookDim"]
    chunks = c["vqEmbedDim"] // dim
    m = build_vqmodel(c["blockOutChannels"], c["layersPerBlock"], latent_channels=c["latentChannels"],
                      vq_embed_dim=c["vqEmbedDim"], num_vq_embeddings=c["numVQEmbeddings"])
    m.quantize = MultichannelQuantizer(c["numVQEmbeddings"], dim, chunks)
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.items()}, strict=True)
    m.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 500):
            idx = m.quantize.indices(encode_latent(m, to_tensor(images[i:i + 500])))  # [B, c, 8, 8]
            out.append(idx.permute(0, 2, 3, 1).reshape(idx.shape[0], -1, chunks))
    return torch.cat(out)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(64 * 8 * 8, 128), nn.Linear(128, 10)

    def forward(self, x):  # [B, 1, 32, 32] in [-1, 1]
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def train_classifier(images, labels, seconds):
    torch.manual_seed(1)
    net = Classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = to_tensor(images)[:, :1]
    y = torch.from_numpy(labels.astype(np.int64))
    start = time.time()
    while time.time() - start < seconds:
        i = torch.randint(0, len(x), (128,))
        loss = F.cross_entropy(net(x[i]), y[i])
        opt.zero_grad(); loss.backward(); opt.step()
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "demo_prior"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    train_x, train_y = load_idx("train-images-idx3-ubyte.gz"), load_idx("train-labels-idx1-ubyte.gz")
    test_x, test_y = load_idx("t10k-images-idx3-ubyte.gz"), load_idx("t10k-labels-idx1-ubyte.gz")

    clf = train_classifier(train_x, train_y, 90)
    with torch.no_grad():
        acc = (clf(to_tensor(test_x)[:, :1]).argmax(1).numpy() == test_y).mean()
    print(f"classifier accuracy on real test images: {acc:.4f}", flush=True)
    torch.save(clf.state_dict(), os.path.join(HERE, "out", "classifier.pt"))

    tokens = demo_tokens(train_x)
    labels = torch.from_numpy(train_y.astype(np.int64))
    c = default_config(codes=256, channels=2, height=8, width=8, classes=10, hidden=192, heads=6, layers=4, mlp=768)
    c["decoder"] = "demo.mvq"
    c["guidance"] = 3.0  # default classifier-free guidance of `movq sample` (measured best of 0, 1, 3)
    torch.manual_seed(0)
    model = MaskGITTransformer(c)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.96))
    n, k = 64, c["codes"]
    start, step = time.time(), 0
    total = a.minutes * 60
    while time.time() - start < total:
        i = torch.randint(0, len(tokens), (a.batch,))
        t, y = tokens[i], labels[i].clone()
        y[torch.rand(a.batch) < 0.1] = c["classes"]  # label dropout, for classifier-free guidance
        # MaskGIT training: a cosine-scheduled ratio of positions masked (all channels of a position).
        ratio = torch.cos(math.pi / 2 * torch.rand(a.batch))
        count = (ratio * n).ceil().clamp(1, n).long()
        rank = torch.rand(a.batch, n).argsort(1).argsort(1)
        masked = rank < count[:, None]
        inp = torch.where(masked[..., None], torch.full_like(t, k), t)
        logits = model(inp, y)
        loss = F.cross_entropy(logits[masked].reshape(-1, k), t[masked].reshape(-1))
        lr = 1e-3 * min(1, (step + 1) / 300) * (0.5 * (1 + math.cos(math.pi * min(1, (time.time() - start) / total))))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
        step += 1
    torch.save({k2: v.contiguous() for k2, v in model.state_dict().items()}, os.path.join(a.out, "prior.pt"))
    with open(os.path.join(a.out, "prior.json"), "w") as f:
        json.dump(c, f, indent=1, sort_keys=True)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
