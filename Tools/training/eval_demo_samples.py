"""How recognisable are sampled classes? Classifies every cell of a
`movq sample` grid (one row per Fashion-MNIST class, 32x32 cells) with the
small CNN trained by Tools/training/train_demo_prior.py, and prints the accuracy per
class and overall (the CNN scores ~0.90 on real test images).

Run: swift run -c release movq sample --batch 50 -o /tmp/grid.png
     $(Tools/setup_venv.sh) Tools/training/eval_demo_samples.py /tmp/grid.png
"""
import os
import sys

import numpy as np
import torch
from PIL import Image

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # Tools/
sys.path.insert(0, os.path.join(TOOLS, "reference"))
from train_demo_prior import Classifier

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def main():
    grid = np.asarray(Image.open(sys.argv[1]).convert("L"), dtype=np.float32)
    rows, cols = grid.shape[0] // 32, grid.shape[1] // 32
    cells = grid.reshape(rows, 32, cols, 32).transpose(0, 2, 1, 3).reshape(rows * cols, 1, 32, 32)
    net = Classifier()
    net.load_state_dict(torch.load(os.path.join(TOOLS, "out", "classifier.pt")))
    with torch.no_grad():
        pred = net(torch.from_numpy(cells / 127.5 - 1)).argmax(1).numpy().reshape(rows, cols)
    total = 0
    for r in range(rows):
        acc = (pred[r] == r).mean()
        total += (pred[r] == r).sum()
        print(f"{NAMES[r]:12s} {acc:.2f}")
    print(f"overall {total / (rows * cols):.3f} over {rows * cols} samples")


if __name__ == "__main__":
    main()
