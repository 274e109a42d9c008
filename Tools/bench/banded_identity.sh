#!/usr/bin/env bash
# Decodes the same Kandinsky-shaped latent whole and in row bands (a
# --max-memory below the whole decode's need) and compares the outputs byte
# for byte, with peak RSS and wall time per run (GNU time).
#   Tools/bench/banded_identity.sh BIN SIZE LIMIT [TIERS] [THREADS]
# e.g. Tools/bench/banded_identity.sh .build/release/movq 512 600M "avx512vnni avx512 avx2 portable" "1 2"
# Needs Tools/out/kandinsky_random (Tools/fixtures/make_kandinsky_random.py):
# k-fp32.mvq, k-int8.mvq and latent_SIZE.npy.
set -euo pipefail
BIN=$(realpath "$1"); SIZE=$2; LIMIT=$3; TIERS=${4:-auto}; THREADS=${5:-2}
cd "$(dirname "$0")/../.."
K=Tools/out/kandinsky_random OUT=$(mktemp -d)  # k-fp32.mvq = kandinsky.mvq, k-int8.mvq = kandinsky-int8.mvq
trap 'rm -rf "$OUT"' EXIT
status=0
for p in fp32 int8; do
  for k in $TIERS; do
    for t in $THREADS; do
      for mode in whole banded; do
        extra=(); [ $mode = banded ] && extra=(--max-memory "$LIMIT")
        /usr/bin/time -f "$p $k threads $t $mode: %e s, peak RSS %M KB" "$BIN" decode $K/k-$p.mvq --latent $K/latent_$SIZE.npy \
          -o "$OUT/$mode.npy" --kernels $k --threads $t --quiet "${extra[@]}" 2>&1 | grep -v '^wrote'
      done
      if cmp -s "$OUT/whole.npy" "$OUT/banded.npy"; then echo "  identical"; else echo "  DIFFERENT"; status=1; fi
    done
  done
done
exit $status
