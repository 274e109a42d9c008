"""Side-by-side decoder latency: movq vs PyTorch (eager, channels_last, bf16
autocast) and onnxruntime (fp32, int8 static QDQ), on the same
Kandinsky-shaped model (random weights) in one run.

Every measurement runs in its own child process (so peak RSS is per runtime),
alternating runtimes round by round so machine noise hits all of them. Each
runtime also decodes latent_<size>.npy once; the table gives its PSNR
against PyTorch fp32 eager (on (x + 1) / 2, as `movq compare`).

Runtimes: movq (kandinsky.mvq), movq_fp16 / movq_int8 (kandinsky-fp16.mvq /
kandinsky-int8.mvq, made by `movq convert --precision ...`), torch,
torch_cl, torch_bf16, ort, ort_int8 (onnxruntime static QDQ, per-channel s8
weights, u8 activations, convs and matmuls only, calibrated on 4 random
latents: the setting KERNELS.md found to keep 42.5 dB).

Run (after Tools/fixtures/make_kandinsky_random.py and `swift build -c release`):
  $(Tools/setup_venv.sh) Tools/bench/bench_peers.py --size 256 --threads 2 --rounds 3
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # Tools/
sys.path.insert(0, os.path.join(TOOLS, "reference"))
import time

HERE = TOOLS
ROOT = os.path.dirname(TOOLS)
MODEL = os.path.join(HERE, "out", "kandinsky_random")


def worker(kind, size, threads, runs, cold=False):
    if cold:
        return cold_worker(kind, size, threads)
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    sys.path.insert(0, os.path.join(TOOLS, "reference"))
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
        elif kind == "torch_bf16":
            m = m.to(memory_format=torch.channels_last)
            zc = z.to(memory_format=torch.channels_last)

            def f():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return decode_zq(m, zc).float()
        elif kind in ("ort", "ort_int8"):
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
            if kind == "ort_int8":
                path = quantize_onnx(path, z.shape)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            zn = z.numpy()
            f = lambda: torch.from_numpy(sess.run(None, {"z": zn})[0])
        out = f()  # warm-up; its output is the one compared
        np.save(os.path.join(MODEL, f"out_{kind}_{size}.npy"), out.float().numpy() if hasattr(out, "float") else out)
        for _ in range(runs):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
    print(json.dumps({"median_s": statistics.median(times), "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def cold_worker(kind, size, threads):
    """onnxruntime's time to first image in a fresh process: session
    creation plus the first run (after the Python imports, which are not
    counted), then its steady state in the same process."""
    import numpy as np
    import onnxruntime as ort
    path = os.path.join(MODEL, f"decoder_{size}.onnx")
    if kind == "ort_int8":
        path = path.replace(".onnx", "_int8.onnx")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run this script once without --cold to export it")
    zn = np.load(os.path.join(MODEL, f"latent_{size}.npy"))
    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    t1 = time.perf_counter()
    sess.run(None, {"z": zn})
    t2 = time.perf_counter()
    steady = []
    for _ in range(3):
        t = time.perf_counter()
        sess.run(None, {"z": zn})
        steady.append(time.perf_counter() - t)
    print(json.dumps({"median_s": t2 - t0, "session_s": t1 - t0, "first_run_s": t2 - t1, "steady_s": statistics.median(steady),
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def movq_cold(movq, mvq, latent, size, threads):
    """A whole `movq decode` process (wall time), then the model's steady state (`movq bench`)."""
    t0 = time.perf_counter()
    subprocess.run([movq, "decode", mvq, "--latent", latent, "-o", "/tmp/movq_cold.png", "--threads", str(threads), "--quiet"],
                   check=True, capture_output=True)
    whole = time.perf_counter() - t0
    steady = run_child([movq, "bench", mvq, "--size", str(size), "--threads", str(threads), "--runs", "3", "--json"])["median_s"]
    return {"median_s": whole, "steady_s": steady, "peak_rss_bytes": 0}


def quantize_onnx(path, shape):
    """Static QDQ int8 model of `path` (cached next to it)."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    out = path.replace(".onnx", "_int8.onnx")
    if os.path.exists(out):
        return out

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.data = iter([{"z": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    pre = path.replace(".onnx", "_pre.onnx")
    quant_pre_process(path, pre)
    quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "MatMul"])
    return out


def psnr(a, b):
    """PSNR in dB of a against b on (x + 1) / 2, as `movq compare`."""
    import numpy as np
    mse = float(np.mean(((a.astype(np.float64) - b.astype(np.float64)) / 2) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


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
    ap.add_argument("--movq", default="movq", help="movq models to run: movq, movq_fp16, movq_int8 (comma separated)")
    ap.add_argument("--cold", action="store_true",
                    help="time to first image: whole movq decode processes vs onnxruntime session + first run (ort, ort_int8 peers)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.size, a.threads, a.runs, a.cold)
    if a.cold:
        return cold_main(a)
    import numpy as np
    movq = os.path.join(ROOT, ".build", "release", "movq")
    latent = os.path.join(MODEL, f"latent_{a.size}.npy")
    cmds = {}
    for k in a.movq.split(","):
        mvq = os.path.join(MODEL, {"movq": "kandinsky.mvq", "movq_fp16": "kandinsky-fp16.mvq", "movq_int8": "kandinsky-int8.mvq"}[k])
        cmds[k] = [movq, "bench", mvq, "--size", str(a.size), "--threads", str(a.threads), "--runs", str(a.runs), "--json"]
        subprocess.run([movq, "decode", mvq, "--latent", latent, "-o", os.path.join(MODEL, f"out_{k}_{a.size}.npy"),
                        "--threads", str(a.threads)], check=True, capture_output=True)
    for p in a.peers.split(","):
        cmds[p] = [sys.executable, __file__, "--worker", p, "--size", str(a.size), "--threads", str(a.threads), "--runs", str(a.runs)]
    results = {k: [] for k in cmds}
    for r in range(a.rounds):
        for k, cmd in cmds.items():
            res = run_child(cmd)
            results[k].append(res)
            print(f"round {r + 1}/{a.rounds} {k}: {res['median_s']:.3f} s", file=sys.stderr, flush=True)
    first = next(iter(results))
    base = statistics.median(x["median_s"] for x in results[first])
    ref_path = os.path.join(MODEL, f"out_torch_{a.size}.npy")
    ref = np.load(ref_path) if "torch" in results and os.path.exists(ref_path) else None
    print(f"\nKandinsky-shaped decoder, {a.size}x{a.size}, {a.threads} threads, median of {a.rounds} rounds x {a.runs} runs")
    print(f"| runtime | latency | {first} / runtime | peak RSS | PSNR vs torch fp32 |")
    print(f"|---|---|---|---|---|")
    for k, rs in results.items():
        t = statistics.median(x["median_s"] for x in rs)
        rss = max(x["peak_rss_bytes"] for x in rs)
        q = "" if ref is None else f"{psnr(np.load(os.path.join(MODEL, f'out_{k}_{a.size}.npy')), ref):.1f} dB"
        print(f"| {k} | {t:.3f} s | {base / t:.2f}x | {rss / 1e9:.2f} GB | {q} |")
    extra = results[first][0]
    print(f"\nmovq: {extra['kernels']} kernels, {extra['gflop']:.1f} model GFLOP at {extra['gflops']:.1f} GFLOP/s effective; "
          f"{extra['executed_gflop']:.1f} GFLOP executed (Winograd) at {extra['executed_gflops']:.1f} GFLOP/s = "
          f"{100 * extra['fraction_of_peak']:.0f}% of measured peak {extra['peak_gflops']:.0f} GFLOP/s")


def cold_main(a):
    movq = os.path.join(ROOT, ".build", "release", "movq")
    latent = os.path.join(MODEL, f"latent_{a.size}.npy")
    names = {"movq": "kandinsky.mvq", "movq_fp16": "kandinsky-fp16.mvq", "movq_int8": "kandinsky-int8.mvq"}
    runs = {k: (lambda k=k: movq_cold(movq, os.path.join(MODEL, names[k]), latent, a.size, a.threads)) for k in a.movq.split(",")}
    for p in a.peers.split(","):
        runs[p] = lambda p=p: run_child([sys.executable, __file__, "--worker", p, "--cold", "--size", str(a.size), "--threads", str(a.threads)])
    results = {k: [] for k in runs}
    for r in range(a.rounds):
        for k, f in runs.items():
            res = f()
            results[k].append(res)
            print(f"round {r + 1}/{a.rounds} {k}: first image {res['median_s']:.3f} s, steady {res['steady_s']:.3f} s", file=sys.stderr, flush=True)
    print(f"\nTime to first image, Kandinsky-shaped decoder, {a.size}x{a.size}, {a.threads} threads, median of {a.rounds} rounds")
    print("| runtime | first image | steady state | first / steady |")
    print("|---|---|---|---|")
    for k, rs in results.items():
        first = statistics.median(x["median_s"] for x in rs)
        steady = statistics.median(x["steady_s"] for x in rs)
        what = "whole process" if k.startswith("movq") else "session + first run"
        print(f"| {k} ({what}) | {first:.3f} s | {steady:.3f} s | {first / steady:.2f}x |")


if __name__ == "__main__":
    main()
