#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer harnesses with clang (ASan + UBSan) and run each for a
# bounded time over a copy of its committed corpus (the checkout stays
# clean).  Exit 0: no crash; 1: a harness crashed (the reproducer is kept
# in the build dir and named below); 77: skipped (no clang / libFuzzer).
#
#   BUILD=build FUZZ_SECONDS=20 tests/fuzz/run.sh [harness...]
#
# Environment: BUILD (default build): harnesses go to $BUILD/fuzz;
# FUZZ_SECONDS (default 20) per harness; CC (default clang).
# Reproduce a crash: $BUILD/fuzz/fuzz_<name> $BUILD/fuzz/crashes/<name>/crash-...
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
OUT=$(mkdir -p "$BUILD/fuzz" && cd "$BUILD/fuzz" && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-20}
CC=${CC:-clang}
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_config fuzz_headers fuzz_ctl fuzz_cli)

skip() { echo "SKIPPED: fuzz tests: $*" >&2; exit 77; }
command -v "$CC" >/dev/null || skip "no $CC; install clang and libclang-rt-14-dev (libFuzzer runtime)"
"$CC" --version 2>/dev/null | grep -qi clang || skip "$CC is not clang; set CC=clang (install clang)"
probe=$OUT/probe
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
  >"$probe.c"
"$CC" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" 2>"$probe.log" ||
  skip "$CC cannot link libFuzzer ($(head -c 200 "$probe.log")); install libclang-rt-14-dev"
rm -f "$probe" "$probe.c" "$probe.log"

echo "== building harnesses in $OUT/bin"
cmake -S "$HERE" -B "$OUT/bin" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/cmake.log" ||
  { cat "$OUT/cmake.log"; exit 1; }
cmake --build "$OUT/bin" -j"$(nproc)" --target "${HARNESSES[@]}" >"$OUT/build.log" 2>&1 ||
  { tail -40 "$OUT/build.log"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for h in "${HARNESSES[@]}"; do
  corpus=$OUT/corpus/$h crashes=$OUT/crashes/$h
  rm -rf "$corpus"
  mkdir -p "$corpus" "$crashes"
  if [ -d "$HERE/corpus/$h" ]; then cp -r "$HERE/corpus/$h/." "$corpus/"; fi
  dict=()
  [ -f "$HERE/$h.dict" ] && dict=(-dict="$HERE/$h.dict")
  log=$OUT/$h.log
  set +e
  (cd "$crashes" && "$OUT/bin/$h" -max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=2048 \
    -max_len=8192 -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" "$corpus") >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ $rc -ne 0 ]; then
    failed=1
    echo "FAIL: $h exit $rc after ${execs:-?} executions; reproducer(s): $(ls "$crashes" | tr '\n' ' ')"
    grep -m1 -A30 -E 'ERROR: |runtime error|==ERROR|deadly signal|fuzz_[a-z]+ (setup|.*is not)' "$log" | head -40
  else
    echo "ok: $h ${execs:-?} executions in ${SECONDS_EACH}s (${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs)"
  fi
done
exit $failed
