"""The official MaskGIT ImageNet 256 model (google-research/maskgit structure:
the VQGAN tokenizer and the 24-layer BERT transformer, random weights, saved
as flax checkpoints like the published files) side by side in one run:
movq (fp32, int8) vs PyTorch (eager fp32 and bf16 autocast) vs JAX on CPU (jit).

  1. transformer forward at batch 1 and batch 8 (sequence 257);
  2. a whole 12-step sample of 8 images (official loop, choice temperature 4.5,
     no guidance) + tokenizer decode to 256x256.

Each runtime runs in its own process, alternating within a round.

Run (after `swift build -c release`):
  $(Tools/setup_venv.sh) Tools/bench/bench_maskgit_official.py --rounds 1 --runs 1
Files: Tools/out/maskgit_official/{maskgit,tokenizer}_imagenet256_checkpoint and their .mvq conversions.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TOOLS)
OUT = os.path.join(TOOLS, "out", "maskgit_official")
sys.path.insert(0, os.path.join(TOOLS, "fixtures"))
sys.path.insert(0, os.path.join(TOOLS, "reference"))

CODES, CLASSES, SIDE = 1024, 1000, 16
TRANSFORMER = dict(vocab=CODES + CLASSES + 1, hidden=768, layers=24, heads=16, intermediate=3072, positions=SIDE * SIDE + 1)
TOKENIZER = dict(filters=128, multipliers=(1, 1, 2, 2, 4), blocks=2, embed=256, codes=CODES, groups=32)
STEPS, CHOICE_T = 12, 4.5


def build():
    """Random-weight flax checkpoints with the official structure (as the published files: to_bytes of the variables)."""
    import flax
    import jax
    import numpy as np
    from make_maskgit_flax_fixtures import Transformer, VQVAE, randomized
    os.makedirs(OUT, exist_ok=True)
    net = Transformer(**TRANSFORMER)
    v = randomized(net.init(jax.random.PRNGKey(0), np.zeros((1, SIDE * SIDE + 1), np.int32)), seed=1, scale=0.02)
    with open(os.path.join(OUT, "maskgit_imagenet256_checkpoint"), "wb") as f:
        f.write(flax.serialization.to_bytes(v))
    tok = VQVAE(**TOKENIZER)
    v = randomized(tok.init(jax.random.PRNGKey(2), np.zeros((1, 256, 256, 3), np.float32)), seed=3)
    with open(os.path.join(OUT, "tokenizer_imagenet256_checkpoint"), "wb") as f:
        f.write(flax.serialization.to_bytes(v))


# ---- PyTorch peer: the same networks (random weights: speed does not depend on them) ----

def torch_tokenizer_decoder():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    g = TOKENIZER["groups"]

    class Res(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.n0, self.c0 = nn.GroupNorm(g, i, eps=1e-6), nn.Conv2d(i, o, 3, padding=1, bias=False)
            self.n1, self.c1 = nn.GroupNorm(g, o, eps=1e-6), nn.Conv2d(o, o, 3, padding=1, bias=False)
            self.c2 = nn.Conv2d(o, o, 1, bias=False) if i != o else None

        def forward(self, x):
            h = self.c1(F.silu(self.n1(self.c0(F.silu(self.n0(x))))))
            return h + (self.c2(h) if self.c2 is not None else x)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            f, m, b = TOKENIZER["filters"], TOKENIZER["multipliers"], TOKENIZER["blocks"]
            w = f * m[-1]
            self.conv_in = nn.Conv2d(TOKENIZER["embed"], w, 3, padding=1)
            layers = [Res(w, w) for _ in range(b)]
            for i in reversed(range(len(m))):
                for _ in range(b):
                    layers.append(Res(w, f * m[i])); w = f * m[i]
                if i > 0:
                    layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, w, 3, padding=1)]
            self.body = nn.Sequential(*layers)
            self.norm, self.conv_out = nn.GroupNorm(g, w, eps=1e-6), nn.Conv2d(w, 3, 3, padding=1)
            self.codebook = nn.Embedding(CODES, TOKENIZER["embed"])

        def forward(self, ids):  # [B, 16, 16]
            z = self.codebook(ids).permute(0, 3, 1, 2)
            return self.conv_out(F.silu(self.norm(self.body(self.conv_in(z)))))

    return Decoder().eval()


def torch_worker(kind, threads, runs, batch, whole):
    import torch
    from maskgit_reference import MaskGITTransformer
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_prior_peers import torch_loop
    torch.set_num_threads(threads)
    config = dict(codes=CODES, channels=1, height=SIDE, width=SIDE, classes=CLASSES, hidden=768, heads=16, layers=24, mlp=3072,
                  norm="layernorm", norm_position="post", activation="gelu", norm_eps=1e-12)
    torch.manual_seed(0)
    m, dec = MaskGITTransformer(config).eval(), torch_tokenizer_decoder()
    bf16 = kind == "torch_bf16"
    n = SIDE * SIDE
    classes = torch.full((batch,), 207)

    def forward(tokens):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return m(tokens, classes).float()

    def sample():
        sampled = torch_loop(forward, batch, n, CODES, STEPS, CHOICE_T)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            dec(sampled[..., 0].reshape(batch, SIDE, SIDE)).float()
        return t1

    return time_it(lambda: forward(torch.full((batch, n, 1), CODES)), sample if whole else None, runs, torch.inference_mode)


# ---- JAX peer: the flax modules themselves, jit-compiled ----

def jax_worker(threads, runs, batch, whole):
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}")
    import contextlib
    import flax
    import jax
    import jax.numpy as jnp
    from make_maskgit_flax_fixtures import Transformer, VQVAE
    net, tok = Transformer(**TRANSFORMER), VQVAE(**TOKENIZER)
    with open(os.path.join(OUT, "maskgit_imagenet256_checkpoint"), "rb") as f:
        tv = flax.serialization.msgpack_restore(f.read())
    with open(os.path.join(OUT, "tokenizer_imagenet256_checkpoint"), "rb") as f:
        kv = flax.serialization.msgpack_restore(f.read())
    logits_fn = jax.jit(lambda seq: net.apply(tv, seq)[..., :CODES])
    decode_fn = jax.jit(lambda ids: tok.apply(kv, ids, method=VQVAE.decode_from_indices))
    n = SIDE * SIDE
    start = jnp.concatenate([jnp.full((batch, 1), 207 + CODES), jnp.full((batch, n), -1)], 1).astype(jnp.int32)

    @jax.jit
    def step(seq, rng, t, n0):  # one iteration of the official parallel_decode loop
        logits = logits_fn(seq)
        rng, r1, r2 = jax.random.split(rng, 3)
        sampled = jax.random.categorical(r1, logits)
        unknown = seq == -1
        sampled = jnp.where(unknown, sampled, seq)
        ratio = (t + 1.0) / STEPS
        probs = jax.nn.softmax(logits, -1)
        p = jnp.take_along_axis(probs, sampled[..., None], -1)[..., 0]
        p = jnp.where(unknown, p, jnp.inf)
        mask_len = jnp.floor(n0 * jnp.clip(jnp.cos(math.pi / 2 * ratio), 1e-6, 1.0))[:, None]
        mask_len = jnp.maximum(1, jnp.minimum(jnp.sum(unknown, -1, keepdims=True) - 1, mask_len))
        conf = jnp.log(p) + CHOICE_T * (1 - ratio) * jax.random.gumbel(r2, p.shape)
        cut = jnp.take_along_axis(jnp.sort(conf, -1), mask_len.astype(jnp.int32), -1)
        return jnp.where(conf < cut, -1, sampled), sampled, rng

    def sample():
        seq, rng = start, jax.random.PRNGKey(0)
        n0 = jnp.sum(start == -1, -1)
        for t in range(STEPS):
            seq, sampled, rng = step(seq, rng, t, n0)
        sampled.block_until_ready()
        t1 = time.perf_counter()
        decode_fn(sampled[:, 1:].reshape(batch, SIDE, SIDE)).block_until_ready()
        return t1

    return time_it(lambda: logits_fn(start).block_until_ready(), sample if whole else None, runs, contextlib.nullcontext)


def agreement(seeds, movq):
    """Token agreement of `movq sample --rng jax` with the official JAX loop
    (Tools/fixtures/make_jax_random_fixtures.py's `official_decode`) on the
    256 model: 8 images of class 207 per seed, 12 steps, fp32."""
    import flax
    import jax
    import jax.numpy as jnp
    import numpy as np
    from make_jax_random_fixtures import official_decode
    from make_maskgit_flax_fixtures import Transformer
    net = Transformer(**TRANSFORMER)
    with open(os.path.join(OUT, "maskgit_imagenet256_checkpoint"), "rb") as f:
        tv = flax.serialization.msgpack_restore(f.read())
    logits_fn = jax.jit(lambda seq: net.apply(tv, seq)[..., :CODES])
    n = SIDE * SIDE
    start = jnp.concatenate([jnp.full((8, 1), 207 + CODES), jnp.full((8, n), -1)], 1).astype(jnp.int32)
    same = total = identical = 0
    for s in seeds:
        want = np.asarray(official_decode(start, jax.random.PRNGKey(s), logits_fn, STEPS, CHOICE_T))[:, 1:]
        out = os.path.join(OUT, f"agreement-{s}.npy")
        subprocess.run([movq, "sample", os.path.join(OUT, "maskgit256-fp32.mvq"), "--class", "207", "--batch", "8", "--rng", "jax",
                        "--seed", str(s), "--tokens", out, "-o", os.path.join(OUT, f"agreement-{s}.png")], check=True, capture_output=True)
        got = np.load(out).reshape(8, n)
        same += int((got == want).sum()); total += got.size; identical += int((got == want).all(1).sum())
        print(f"seed {s}: {int((got == want).sum())}/{got.size} tokens agree", flush=True)
    print(f"jax {jax.__version__}, jax_threefry_partitionable {jax.config.jax_threefry_partitionable}: "
          f"{same}/{total} tokens = {100 * same / total:.2f}%, {identical}/{8 * len(seeds)} images identical")


def time_it(forward, sample, runs, context):
    import resource
    out = {}
    with context():
        forward()
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter(); forward(); ts.append(time.perf_counter() - t0)
        out["forward_median_s"] = statistics.median(ts)
        if sample:
            sample()
            ts, split = [], None
            for _ in range(runs):
                t0 = time.perf_counter(); t1 = sample(); t2 = time.perf_counter()
                ts.append(t2 - t0); split = (t1 - t0, t2 - t1)
            out.update(sample_median_s=statistics.median(ts), last_sampling_s=split[0], last_decoding_s=split[1])
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--only", help="comma-separated runtimes (movq,movq_int8,torch,torch_bf16,jax)")
    ap.add_argument("--agreement", type=int, metavar="SEEDS", help="instead: token agreement of movq --rng jax with the official JAX loop over SEEDS seeds")
    a = ap.parse_args()
    if a.agreement:
        return agreement(range(a.agreement), os.path.join(ROOT, ".build", "release", "movq"))
    if a.worker == "jax":
        return jax_worker(a.threads, a.runs, a.batch, a.whole)
    if a.worker:
        return torch_worker(a.worker, a.threads, a.runs, a.batch, a.whole)
    movq = os.path.join(ROOT, ".build", "release", "movq")
    ckpt = {k: os.path.join(OUT, f"{k}_imagenet256_checkpoint") for k in ("maskgit", "tokenizer")}
    if not all(os.path.exists(p) for p in ckpt.values()):
        build()
    for prec in ("fp32", "int8"):
        for k in ("tokenizer", "maskgit"):
            mvq = os.path.join(OUT, f"{k}256-{prec}.mvq")
            if not os.path.exists(mvq):
                extra = ["--decoder", f"tokenizer256-{prec}.mvq"] if k == "maskgit" else []
                subprocess.run([movq, "convert", ckpt[k], "--precision", prec, "-o", mvq, "-q"] + extra, check=True)
    runtimes = (a.only or "movq,movq_int8,torch,torch_bf16,jax").split(",")

    def command(k, batch, whole):
        if k.startswith("movq"):
            prec = "int8" if k == "movq_int8" else "fp32"
            cmd = [movq, "bench", os.path.join(OUT, f"maskgit256-{prec}.mvq"), "--batch", str(batch), "--threads", str(a.threads),
                   "--runs", str(a.runs), "--steps", str(STEPS), "--json"]
            return cmd if whole else cmd + ["--decoder", "/nonexistent"]
        return [sys.executable, __file__, "--worker", k, "--threads", str(a.threads), "--runs", str(a.runs), "--batch", str(batch)] + (["--whole"] if whole else [])

    results = {}
    for r in range(a.rounds):
        for batch, whole in ((1, False), (8, True)):
            for k in runtimes:
                line = subprocess.run(command(k, batch, whole), capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                results.setdefault((k, batch), []).append(json.loads(line))
                print(f"round {r + 1} {k} batch {batch}: {line}", file=sys.stderr, flush=True)
    med = lambda k, b, key: statistics.median(x[key] for x in results[(k, b)])
    print(f"\nOfficial MaskGIT ImageNet 256 (random weights), {a.threads} threads, median of {a.rounds} round(s) x {a.runs} run(s)")
    print("| runtime | forward batch 1 | forward batch 8 | 12-step sample of 8 + decode | sampling | tokenizer decode | images/s | movq_int8 / runtime (sample) |")
    print("|---|---|---|---|---|---|---|---|")
    base = med("movq_int8", 8, "sample_median_s") if "movq_int8" in runtimes else None
    for k in runtimes:
        s = med(k, 8, "sample_median_s"); last = results[(k, 8)][-1]
        print(f"| {k} | {med(k, 1, 'forward_median_s') * 1e3:.0f} ms | {med(k, 8, 'forward_median_s'):.2f} s | {s:.1f} s | "
              f"{last['last_sampling_s']:.1f} s | {last['last_decoding_s']:.2f} s | {8 / s:.2f} | {base / s if base else float('nan'):.2f}x |")


if __name__ == "__main__":
    main()
