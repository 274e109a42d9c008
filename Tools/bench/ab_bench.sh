#!/usr/bin/env bash
# Side-by-side A/B of two movq binaries on the benchmark models, alternating
# A and B in every round (machines here are shared and noisy).
#   Tools/bench/ab_bench.sh BIN_A BIN_B [ROUNDS]
# Prints one line per (round, case, binary): the median of `movq bench`.
set -euo pipefail
A="$1"; B="$2"; ROUNDS="${3:-3}"
K=Tools/out/kandinsky_random; P=Tools/out/imagenet_prior
cases=("decode-fp32 $K/k-fp32.mvq" "decode-int8 $K/k-int8.mvq" "prior-fp32 $P/prior.mvq" "prior-int8 $P/prior-int8.mvq")
for r in $(seq 1 "$ROUNDS"); do
  for c in "${cases[@]}"; do
    set -- $c
    for bin in "$A" "$B"; do
      med=$("$bin" bench "$2" --threads 2 --runs 3 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["median_s"])')
      echo "$r $1 $bin $med"
    done
  done
done
