"""Side-by-side transformer forward latency: movq (fp32, and int8 weights
with int16 GEMMs) vs PyTorch (our reference module in fp32 eager and bf16
autocast, and `nn.TransformerEncoder`'s fast path, fp32 and bf16) on an ImageNet-shaped MaskGIT transformer (24 layers, hidden
768, 16 heads, MLP 3072, 16x16 tokens of 1024 codes, 1000 classes: sequence
257), random weights, batch 1, in one run (runtimes alternate round by round,
each in its own child process).

Run (after `swift build -c release`):
  $(Tools/setup_venv.sh) Tools/bench/bench_prior_peers.py --threads 2 --rounds 3 --runs 5
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # Tools/
sys.path.insert(0, os.path.join(TOOLS, "reference"))
import time

HERE = TOOLS
ROOT = os.path.dirname(TOOLS)
OUT = os.path.join(HERE, "out", "imagenet_prior")
CONFIG = dict(codes=1024, channels=1, height=16, width=16, classes=1000, hidden=768, heads=16, layers=24, mlp=3072,
              norm="layernorm", norm_position="post", activation="gelu", norm_eps=1e-12)


# The same transformer over the Kandinsky-shaped decoder's tokens at 256x256
# (32x32 positions of 16384 codes: sequence 1025), for the whole-sample timing:
#   $(Tools/setup_venv.sh) Tools/bench/bench_prior_peers.py --build-kandinsky-prior
#   .build/release/movq convert Tools/out/kandinsky_prior/prior.pt --precision int8 -o Tools/out/kandinsky_prior/prior-int8.mvq
#   .build/release/movq bench Tools/out/kandinsky_prior/prior-int8.mvq --decoder Tools/out/kandinsky_random/kandinsky-int8.mvq --steps 8 --runs 1
KANDINSKY = dict(CONFIG, codes=16384, height=32, width=32)

# The whole sample (issue 14, target 6): 8 MaskGIT steps of the transformer
# above with classifier-free guidance (batch 2 per image), then the
# paper-shaped f=16 MoVQ decoder (diffusers VQModel, spatial norm, blocks
# [128, 128, 256, 256, 512], 2 layers each, attention at the lowest level,
# 1024 codes of dimension 4: 16x16 latents -> 256x256), random weights:
#   $(Tools/setup_venv.sh) Tools/bench/bench_prior_peers.py --whole --cfg 3 --batch 1 --rounds 3 --runs 2
F16 = os.path.join(HERE, "out", "f16_movq")


def build_f16():
    """Writes Tools/out/f16_movq/{diffusers, movq-fp32.mvq, movq-int8.mvq}."""
    import torch
    sys.path.insert(0, os.path.join(TOOLS, "fixtures"))
    from movq_reference import build_vqmodel
    from make_fixtures import save_diffusers
    torch.manual_seed(0)
    m = build_vqmodel([128, 128, 256, 256, 512], 2, latent_channels=4, vq_embed_dim=4, num_vq_embeddings=1024).eval()
    save_diffusers(m, os.path.join(F16, "diffusers"))


def torch_loop(logits_of, batch, n, k, steps, choice_temperature=4.5):
    """The official MaskGIT loop in PyTorch, batched, from all-MASK (id k):
    `logits_of(tokens [B, N, 1])` gives `[B, N, 1, K]`; returns the last step's draws."""
    import math
    import torch
    g = torch.Generator().manual_seed(0)
    tokens = torch.full((batch, n, 1), k)
    for step in range(steps):
        logp = torch.log_softmax(logits_of(tokens), -1)
        sampled = torch.multinomial(logp.exp().reshape(-1, k), 1, generator=g).reshape(batch, n, 1)
        unknown = tokens[..., 0] == k
        sampled = torch.where(unknown[..., None], sampled, tokens)
        r = (step + 1) / steps
        mask_len = torch.clamp(torch.full((batch,), math.floor(n * math.cos(math.pi / 2 * r))), min=1)
        mask_len = torch.minimum(mask_len, unknown.sum(-1) - 1).clamp(min=0)
        conf = logp.gather(-1, sampled[..., None])[..., 0].sum(-1)
        gumbel = -torch.log(-torch.log(torch.rand(batch, n, generator=g).clamp(1e-20, 1)))
        conf = torch.where(unknown, conf + choice_temperature * (1 - r) * gumbel, torch.tensor(float("inf")))
        cutoff = conf.sort(-1).values.gather(-1, mask_len[:, None])
        tokens = torch.where((conf < cutoff)[..., None], k, sampled)
    return sampled


def torch_sample(m, vq, batch, steps, cfg, bf16):
    """The official MaskGIT loop in PyTorch, batched, guided as movq does
    (`uncond + s (cond - uncond)`, both halves in one forward), then the decoder."""
    import torch
    k, n, null = CONFIG["codes"], CONFIG["height"] * CONFIG["width"], CONFIG["classes"]
    classes = torch.zeros(batch, dtype=torch.long)

    def logits_of(t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if cfg == 0:
                return m(t, classes).float()
            both = m(torch.cat([t, t]), torch.cat([classes, torch.full((batch,), null)])).float()
            cond, uncond = both.chunk(2)
            return uncond + cfg * (cond - uncond)

    sampled = torch_loop(logits_of, batch, n, k, steps)
    t1 = time.perf_counter()
    # The last step's draws fill every position (the official loop returns them).
    zq = vq.quantize.embedding(sampled[..., 0]).reshape(batch, 16, 16, 4).permute(0, 3, 1, 2).contiguous()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        from movq_reference import decode_zq
        decode_zq(vq, zq).float()
    return t1


def whole_worker(kind, threads, runs, batch, cfg):
    import torch
    from diffusers import VQModel
    from maskgit_reference import MaskGITTransformer
    torch.set_num_threads(threads)
    m = MaskGITTransformer(CONFIG).eval()
    m.load_state_dict(torch.load(os.path.join(OUT, "prior.pt")))
    vq = VQModel.from_pretrained(os.path.join(F16, "diffusers")).eval()
    times, split = [], (0, 0)
    with torch.inference_mode():
        torch_sample(m, vq, batch, 8, cfg, kind == "torch_bf16")  # warm-up
        for _ in range(runs):
            t0 = time.perf_counter()
            t1 = torch_sample(m, vq, batch, 8, cfg, kind == "torch_bf16")
            t2 = time.perf_counter()
            times.append(t2 - t0)
            split = (t1 - t0, t2 - t1)
    import resource
    print(json.dumps({"sample_median_s": statistics.median(times), "last_sampling_s": split[0], "last_decoding_s": split[1],
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def run_rounds(cmds, rounds, key):
    """Runs every command once per round, alternating, each in its own process; their last JSON lines by name."""
    results = {k: [] for k in cmds}
    for r in range(rounds):
        for k, cmd in cmds.items():
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            results[k].append(json.loads(out))
            print(f"round {r + 1}/{rounds} {k}: {results[k][-1][key]:.3f} s", file=sys.stderr, flush=True)
    return results


def whole_main(a, movq):
    if not os.path.exists(os.path.join(F16, "diffusers")):
        build_f16()
    for prec in ("fp32", "int8"):
        mvq = os.path.join(F16, f"movq-{prec}.mvq")
        if not os.path.exists(mvq):
            subprocess.run([movq, "convert", os.path.join(F16, "diffusers"), "--precision", prec, "-o", mvq], check=True, capture_output=True)
    cmds = {}
    for k, prec in (("movq", "fp32"), ("movq_int8", "int8")):
        cmds[k] = [movq, "bench", os.path.join(OUT, f"prior-{prec}.mvq"), "--decoder", os.path.join(F16, f"movq-{prec}.mvq"),
                   "--cfg", str(a.cfg), "--batch", str(a.batch), "--steps", "8", "--threads", str(a.threads), "--runs", str(a.runs), "--json"]
    for k in ("torch", "torch_bf16"):
        cmds[k] = [sys.executable, __file__, "--worker", k, "--whole", "--cfg", str(a.cfg), "--batch", str(a.batch),
                   "--threads", str(a.threads), "--runs", str(a.runs)]
    results = run_rounds(cmds, a.rounds, "sample_median_s")
    base = statistics.median(x["sample_median_s"] for x in results["movq_int8"])
    print(f"\nWhole sample: 8 MaskGIT steps (sequence 257, guidance {a.cfg}: {2 if a.cfg else 1} sequences per image) + f=16 MoVQ decode "
          f"at 256x256, batch {a.batch}, {a.threads} threads, median of {a.rounds} rounds x {a.runs} runs")
    print("| runtime | whole sample | sampling | decoding | movq_int8 / runtime | images/s |")
    print("|---|---|---|---|---|---|")
    for k, rs in results.items():
        t = statistics.median(x["sample_median_s"] for x in rs)
        print(f"| {k} | {t:.3f} s | {rs[-1]['last_sampling_s']:.3f} s | {rs[-1]['last_decoding_s']:.3f} s | {base / t:.2f}x | {a.batch / t:.2f} |")


def build(config=CONFIG, out=OUT):
    import torch
    sys.path.insert(0, os.path.join(TOOLS, "reference"))
    from maskgit_reference import MaskGITTransformer
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    m = MaskGITTransformer(config)
    torch.save({k: v.contiguous() for k, v in m.state_dict().items()}, os.path.join(out, "prior.pt"))
    with open(os.path.join(out, "prior.json"), "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)


def encoder_peer(bf16):
    """PyTorch's own `nn.TransformerEncoder` (its inference fast path: eval,
    no grad, batch first) with the same sizes: 24 post-norm layers of 768,
    16 heads, MLP 3072, GELU, then the 768 -> 1024 output projection; the
    embeddings (a gather) are left out."""
    import torch
    c = CONFIG
    layer = torch.nn.TransformerEncoderLayer(c["hidden"], c["heads"], c["mlp"], dropout=0.0, activation="gelu", batch_first=True,
                                             layer_norm_eps=c["norm_eps"])
    enc = torch.nn.TransformerEncoder(layer, c["layers"], enable_nested_tensor=False).eval()
    head = torch.nn.Linear(c["hidden"], c["codes"]).eval()
    x = torch.randn(1, c["height"] * c["width"] + 1, c["hidden"])

    def f():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return head(enc(x)[:, 1:])
    return f


def worker(kind, threads, runs):
    import torch
    sys.path.insert(0, os.path.join(TOOLS, "reference"))
    from maskgit_reference import MaskGITTransformer
    torch.set_num_threads(threads)
    m = MaskGITTransformer(CONFIG).eval()
    m.load_state_dict(torch.load(os.path.join(OUT, "prior.pt")))
    tokens = torch.full((1, 256, 1), CONFIG["codes"])
    classes = torch.zeros(1, dtype=torch.long)
    times = []
    with torch.inference_mode():
        def f():
            if kind == "torch_bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return m(tokens, classes)
            return m(tokens, classes)
        if kind.startswith("torch_encoder"):
            f = encoder_peer(kind == "torch_encoder_bf16")
        f()
        for _ in range(runs):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
    import resource
    print(json.dumps({"median_s": statistics.median(times), "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--build-kandinsky-prior", action="store_true", help="only write Tools/out/kandinsky_prior (see above)")
    ap.add_argument("--whole", action="store_true", help="time whole samples with guidance + the f=16 decoder (see above)")
    ap.add_argument("--cfg", type=float, default=3.0, help="--whole: guidance scale (0 = off)")
    ap.add_argument("--batch", type=int, default=1, help="--whole: images per sample")
    a = ap.parse_args()
    if a.build_kandinsky_prior:
        return build(KANDINSKY, os.path.join(HERE, "out", "kandinsky_prior"))
    if a.worker:
        return whole_worker(a.worker, a.threads, a.runs, a.batch, a.cfg) if a.whole else worker(a.worker, a.threads, a.runs)
    movq = os.path.join(ROOT, ".build", "release", "movq")
    if not os.path.exists(os.path.join(OUT, "prior.pt")):
        build()
    for prec in ("fp32", "int8", "fp16"):
        mvq = os.path.join(OUT, f"prior-{prec}.mvq")
        if not os.path.exists(mvq):
            subprocess.run([movq, "convert", os.path.join(OUT, "prior.pt"), "--precision", prec, "-o", mvq], check=True, capture_output=True)
    if a.whole:
        return whole_main(a, movq)
    cmds = {}
    for k, prec in (("movq", "fp32"), ("movq_int8", "int8")):
        cmds[k] = [movq, "bench", os.path.join(OUT, f"prior-{prec}.mvq"), "--threads", str(a.threads), "--runs", str(a.runs), "--json"]
    for k in ("torch", "torch_bf16", "torch_encoder", "torch_encoder_bf16"):
        cmds[k] = [sys.executable, __file__, "--worker", k, "--threads", str(a.threads), "--runs", str(a.runs)]
    results = run_rounds(cmds, a.rounds, "median_s")
    base = statistics.median(x["median_s"] for x in results["movq"])
    print(f"\nImageNet-shaped MaskGIT transformer forward (sequence 257, batch 1), {a.threads} threads, median of {a.rounds} rounds x {a.runs} runs")
    print("| runtime | latency | movq / runtime | peak RSS |")
    print("|---|---|---|---|")
    for k, rs in results.items():
        t = statistics.median(x["median_s"] for x in rs)
        print(f"| {k} | {t * 1e3:.1f} ms | {base / t:.2f}x | {max(x['peak_rss_bytes'] for x in rs) / 1e9:.2f} GB |")
    e = results["movq"][0]
    print(f"\nmovq: {e['kernels']} kernels, {e['forward_gflop']:.1f} GFLOP per forward at {e['forward_gflops']:.1f} GFLOP/s = "
          f"{100 * e['fraction_of_peak']:.0f}% of measured peak {e['peak_gflops']:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
