"""Side-by-side transformer forward latency: movq (fp32, and int8 weights
with int16 GEMMs) vs PyTorch (fp32 eager, bf16 autocast) on an ImageNet-shaped MaskGIT transformer (24 layers, hidden
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
    a = ap.parse_args()
    if a.build_kandinsky_prior:
        return build(KANDINSKY, os.path.join(HERE, "out", "kandinsky_prior"))
    if a.worker:
        return worker(a.worker, a.threads, a.runs)
    movq = os.path.join(ROOT, ".build", "release", "movq")
    if not os.path.exists(os.path.join(OUT, "prior.pt")):
        build()
    cmds = {}
    for prec in ("fp32", "int8", "fp16"):
        mvq = os.path.join(OUT, f"prior-{prec}.mvq")
        if not os.path.exists(mvq):
            subprocess.run([movq, "convert", os.path.join(OUT, "prior.pt"), "--precision", prec, "-o", mvq], check=True, capture_output=True)
    for k, prec in (("movq", "fp32"), ("movq_int8", "int8")):
        cmds[k] = [movq, "bench", os.path.join(OUT, f"prior-{prec}.mvq"), "--threads", str(a.threads), "--runs", str(a.runs), "--json"]
    for k in ("torch", "torch_bf16"):
        cmds[k] = [sys.executable, __file__, "--worker", k, "--threads", str(a.threads), "--runs", str(a.runs)]
    results = {k: [] for k in cmds}
    for r in range(a.rounds):
        for k, cmd in cmds.items():
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            results[k].append(json.loads(out))
            print(f"round {r + 1}/{a.rounds} {k}: {results[k][-1]['median_s']:.3f} s", file=sys.stderr, flush=True)
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
