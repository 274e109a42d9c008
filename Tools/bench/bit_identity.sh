#!/usr/bin/env bash
# Runs one movq binary over a fixed set of conversions, decodes, encodes and
# samples (every precision, several tiers and thread counts) and writes the
# outputs to a folder; `cmp -r`-style comparison of two folders then shows
# whether a change kept outputs bit-identical.
#   Tools/bench/bit_identity.sh BIN OUTDIR
#   Tools/bench/bit_identity.sh --compare DIR_A DIR_B
# Needs Tools/out/kandinsky_random (Tools/fixtures/make_kandinsky_random.py).
set -euo pipefail
if [ "${1:-}" = "--compare" ]; then
  status=0
  for f in "$2"/*; do
    n=$(basename "$f")
    if cmp -s "$f" "$3/$n"; then echo "same      $n"; else echo "DIFFERENT $n"; status=1; fi
  done
  exit $status
fi
BIN=$(realpath "$1"); OUT=$(realpath -m "$2"); mkdir -p "$OUT"
cd "$(dirname "$0")/../.."
K=Tools/out/kandinsky_random F=Tests/MoVQTests/Fixtures
run() { "$BIN" "$@" --quiet >/dev/null; }
for p in fp32 fp16 int8; do
  "$BIN" convert $K/movq_original.ckpt --precision $p -o "$OUT/k-$p.mvq" >/dev/null
  run decode "$OUT/k-$p.mvq" --latent $K/latent_256.npy -o "$OUT/k-$p-256.npy" --threads 2
done
run decode "$OUT/k-int8.mvq" --latent $K/latent_256.npy -o "$OUT/k-int8-256-avx2-t1.npy" --threads 1 --kernels avx2
run decode "$OUT/k-fp32.mvq" --latent $K/latent_256.npy -o "$OUT/k-fp32-256-avx512-t1.npy" --threads 1 --kernels avx512
for m in tiny_movq tiny_vqgan tiny_multichannel; do
  src=$F/$m/original.ckpt; [ -f "$src" ] || src=$F/$m/diffusers
  for p in fp32 int8; do
    "$BIN" convert $src --precision $p -o "$OUT/$m-$p.mvq" >/dev/null
    # The reference backend reads plain layouts (fp32 Winograd weights do not read back).
    "$BIN" convert $src --precision $p --layout plain -o "$OUT/$m-$p-plain.mvq" >/dev/null 2>&1 || cp "$OUT/$m-$p.mvq" "$OUT/$m-$p-plain.mvq"
    for k in auto portable reference; do
      file="$OUT/$m-$p.mvq"; [ $k = reference ] && file="$OUT/$m-$p-plain.mvq"
      run decode "$file" --latent $F/$m/latent.npy -o "$OUT/$m-$p-$k-decode.npy" --kernels $k --threads 3
    done
  done
done
run encode Sources/MoVQDemo/Resources/demo_images/*.png -o "$OUT/demo-encode-idx.npy" --latent-output "$OUT/demo-encode-latent.npy"
run reconstruct -o "$OUT/demo-reconstruct.png"
run sample -o "$OUT/demo-sample-t1.png" --tokens "$OUT/demo-sample-t1.npy" --threads 1
run sample -o "$OUT/demo-sample-t2.png" --tokens "$OUT/demo-sample-t2.npy" --threads 2 --kernels avx2
echo "wrote $OUT"
