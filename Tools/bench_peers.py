"""Side-by-side decoder latency: movq vs PyTorch (eager, channels_last) and
onnxruntime, on the same Kandinsky-shaped model (random weights) in one run.

Every measurement runs in its own child process (so peak RSS is per runtime),
alternating runtimes round by round so machine noise hits all of them.

Run (after Tools/make_kandinsky_random.py and `swift build -c release`):
  $(Tools/setup_venv.sh) Tools/bench_peers.py --size 256 --threads 2 --rounds 3
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.join(HERE, "out", "kandinsky_random")


def worker(kind, size, threads, runs):
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    sys.path.insert(0, HERE)
    from diffusers import VQModel
    from movq_reference import decode_zq
    m = VQModel.from_pretrained(os.path.join(MODEL, "diffusers")).eval()
    z = torch.from_numpy(np.load(os.path.join(MODEL, f"latent_{size}.npy")))
    times = []
    with torch.inference_mode():
        if kind == "torch":
            f = lambda: decode_zq(m, z)
        elif kind == "torch_cl":
            m = m.to(memory_format=torch.channels_last)
            zc = z.to(memory_format=torch.channels_last)
            f = lambda: decode_zq(m, zc)
        elif kind == "ort":
            import onnxruntime as ort
            path = os.path.join(MODEL, f"decoder_{size}.onnx")
            if not os.path.exists(path):
                class Dec(torch.nn.Module):
                    def __init__(self, m):
                        super().__init__()
                        self.m = m

                    def forward(self, z):
                        return decode_zq(self.m, z)
                torch.onnx.export(Dec(m), (z,), path, input_names=["z"], output_names=["image"], dynamo=False, opset_version=17)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            zn = z.numpy()
            f = lambda: sess.run(None, {"z": zn})
        f()  # warm-up
        for _ in range(runs):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
    print(json.dumps({"median_s": statistics.median(times), "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def run_child(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per child process")
    ap.add_argument("--peers", default="torch,torch_cl,ort")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.size, a.threads, a.runs)
    movq = os.path.join(ROOT, ".build", "release", "movq")
    mvq = os.path.join(MODEL, "kandinsky.mvq")
    cmds = {"movq": [movq, "bench", mvq, "--size", str(a.size), "--threads", str(a.threads), "--runs", str(a.runs), "--json"]}
    for p in a.peers.split(","):
        cmds[p] = [sys.executable, __file__, "--worker", p, "--size", str(a.size), "--threads", str(a.threads), "--runs", str(a.runs)]
    results = {k: [] for k in cmds}
    for r in range(a.rounds):
        for k, cmd in cmds.items():
            res = run_child(cmd)
            results[k].append(res)
            print(f"round {r + 1}/{a.rounds} {k}: {res['median_s']:.3f} s", file=sys.stderr, flush=True)
    base = statistics.median(x["median_s"] for x in results["movq"])
    print(f"\nKandinsky-shaped decoder, {a.size}x{a.size}, {a.threads} threads, median of {a.rounds} rounds x {a.runs} runs")
    print(f"| runtime | latency | movq / runtime | peak RSS |")
    print(f"|---|---|---|---|")
    for k, rs in results.items():
        t = statistics.median(x["median_s"] for x in rs)
        rss = max(x["peak_rss_bytes"] for x in rs)
        print(f"| {k} | {t:.3f} s | {base / t:.2f}x | {rss / 1e9:.2f} GB |")
    extra = results["movq"][0]
    print(f"\nmovq: {extra['kernels']} kernels, {extra['gflop']:.1f} model GFLOP at {extra['gflops']:.1f} GFLOP/s effective; "
          f"{extra['executed_gflop']:.1f} GFLOP executed (Winograd) at {extra['executed_gflops']:.1f} GFLOP/s = "
          f"{100 * extra['fraction_of_peak']:.0f}% of measured peak {extra['peak_gflops']:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
