#!/usr/bin/env bash
# Fuzzes the MoVQIO parsers with libFuzzer + AddressSanitizer (leak detection on).
#
#   Fuzz/run.sh SECONDS [TARGET ...]
#
# Builds .build-fuzz/movq-fuzz once (Sources/MoVQIO + Fuzz/FuzzTargets.swift, on MoVQKernelCore,
# -sanitize=fuzzer,address), then runs each target (default: all) for
# SECONDS on its corpus (.build-fuzz/corpus/TARGET, seeded from
# Fuzz/seeds/TARGET) with its dictionary (Fuzz/dict/TARGET.dict) if any.
# Crashes, sanitizer reports, leaks and timeouts are written to
# .build-fuzz/findings/ and make the script exit non-zero. Prints the
# executions and the final coverage of each target.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:?usage: Fuzz/run.sh SECONDS [TARGET ...]}"
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(packed safetensors torch pickle npy flax png inflate deflate)
OUT=.build-fuzz
mkdir -p "$OUT/findings"

echo "building $OUT/movq-fuzz" >&2
# MoVQIO imports MoVQKernelCore (the kernel layouts it stores), built first as
# a static module, and the C module CRC32Fold.
mkdir -p "$OUT/modules"
# shellcheck disable=SC2046
if ! swiftc -parse-as-library -O -module-name MoVQKernelCore -package-name movq -emit-module -emit-module-path "$OUT/modules/MoVQKernelCore.swiftmodule" \
    -emit-library -static -o "$OUT/modules/libMoVQKernelCore.a" $(find Sources/MoVQKernelCore -name '*.swift' | sort) >"$OUT/build.log" 2>&1 ||
   ! clang -O2 -fsanitize=address -c Sources/CRC32Fold/crc32_fold.c -I Sources/CRC32Fold/include -o "$OUT/modules/crc32_fold.o" >>"$OUT/build.log" 2>&1 ||
   ! swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name MoVQIO -package-name movq -I "$OUT/modules" -L "$OUT/modules" -lMoVQKernelCore \
    -I Sources/CRC32Fold/include "$OUT/modules/crc32_fold.o" \
    $(find Sources/MoVQIO -name '*.swift' | sort) Fuzz/FuzzTargets.swift -o "$OUT/movq-fuzz" >>"$OUT/build.log" 2>&1; then
    grep -v "Cannot export local symbol" "$OUT/build.log" >&2
    exit 1
fi

status=0
summary=""
for t in "${TARGETS[@]}"; do
    corpus="$OUT/corpus/$t"
    mkdir -p "$corpus"
    if [ -d "Fuzz/seeds/$t" ]; then cp -n Fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true; fi
    dict=()
    [ -f "Fuzz/dict/$t.dict" ] && dict=(-dict="Fuzz/dict/$t.dict")
    log="$OUT/$t.log"
    echo "fuzzing $t for ${SECS}s" >&2
    set +e
    MOVQ_FUZZ_TARGET="$t" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:handle_abort=1" \
        "$OUT/movq-fuzz" "$corpus" "${dict[@]}" -max_total_time="$SECS" -max_len=131072 -timeout=20 \
        -rss_limit_mb=2560 -malloc_limit_mb=2048 -artifact_prefix="$OUT/findings/$t-" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    if [ $rc -ne 0 ]; then
        status=1
        echo "FINDING in $t (exit $rc): see $log and $OUT/findings/" >&2
        grep -E "ERROR|SUMMARY|Fatal|panic" "$log" | head -5 >&2 || true
    fi
    summary+=$(printf '%-12s %12s execs  cov %6s  exit %d' "$t" "$execs" "$cov" "$rc")$'\n'
done
printf '%s' "$summary"
exit $status
