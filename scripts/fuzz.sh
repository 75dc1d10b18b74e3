#!/usr/bin/env bash
# Differential fuzzing with libFuzzer (issue 6).
#   scripts/fuzz.sh [seconds]    seconds per target, default 60
# Builds the targets of tests/fuzz/ with clang in build-fuzz/, runs each for
# the given time starting from its committed seed corpus, and exits non-zero
# on any crash, sanitizer report or broken promise (the targets abort, and
# libFuzzer saves the input under build-fuzz/artifacts/).
#
# How it is built, and why:
# - libqkv is built by Meson with CC=clang, ASan+UBSan (-Db_sanitize) and
#   -fno-sanitize-recover=all, so a report stops the run instead of
#   scrolling by. -Db_lundef=false because sanitized code leaves runtime
#   symbols to the final link. -fsanitize=fuzzer-no-link instruments the
#   library's branches for coverage (so the fuzzer is guided by the kernels
#   and the argument checks, not only by the target) without pulling in
#   libFuzzer's main twice.
# - The targets are linked by hand against the static libqkv.a with
#   -fsanitize=fuzzer: Meson has no notion of a libFuzzer executable, and a
#   static link keeps every ISA's objects in one instrumented binary.
# - The tests and benchmarks are not built there (-Dtests/-Dbench=disabled):
#   they have their own sanitizer job in scripts/test-sanitizers.sh.
set -euo pipefail

secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
targets=(scores softmax weighted_sum attention batch)
jobs=${QKV_JOBS:-2}

cc=${FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null; then
  echo "fuzz.sh: $cc not found (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 2
fi

san="-fsanitize=address,undefined -fno-sanitize-recover=all"
echo "== fuzz: building libqkv with $cc ($san, fuzzer-no-link) in build-fuzz/"
if [ ! -f "$build/build.ninja" ]; then
  # -O0: with ASan+UBSan, clang 14 spends minutes per SIMD template at -O1
  # (9 min for avx512.c, where the one driver and its always_inline
  # microkernels make a few huge functions) and seconds at -O0, which runs
  # the same paths (always_inline still inlines), only fewer per second.
  # shellcheck disable=SC2046  # word splitting wanted: the options
  CC=$cc meson setup "$build" "$root" --buildtype=plain \
    $(bash "$root/scripts/unrunnable-isas.sh") \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dtests=disabled -Dbench=disabled \
    -Dc_args="-O0 -g -fno-sanitize-recover=all -fsanitize=fuzzer-no-link -fno-omit-frame-pointer" >"$build.setup.log" 2>&1 ||
    { cat "$build.setup.log"; exit 1; }
  mv "$build.setup.log" "$build/setup.log"
fi
ninja -C "$build" -j"$jobs" libqkv.a >/dev/null

libs=$(pkg-config --libs sleef 2>/dev/null || echo -lsleef)
mkdir -p "$build/bin" "$build/artifacts"
for t in "${targets[@]}"; do
  src=$root/tests/fuzz/fuzz_$t.c
  bin=$build/bin/fuzz_$t
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$build/libqkv.a" -nt "$bin" ] ||
     [ "$root/tests/fuzz/fuzz_common.h" -nt "$bin" ] || [ "$root/tests/qkvtest.h" -nt "$bin" ]; then
    echo "   $cc -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_$t.c -> build-fuzz/bin/fuzz_$t"
    # -Wall -Wextra -Werror: the targets are held to the project's warnings.
    $cc -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -I"$root/include" -I"$root/tests" \
      "$src" "$root/tests/oracle.c" "$build/libqkv.a" $libs -lm -lpthread -o "$bin"
  fi
done

# UBSan: stop at the first report with a stack; ASan: leaks count too.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

# One target: the fuzzer's output goes to build-fuzz/fuzz_TARGET.log, a
# line of summary (and on failure the log's tail) to stdout; its status is
# the fuzzer's. scripts/par.sh runs QKV_JOBS of them at a time (each fuzzer
# is one process on one core) and prints what each said, in order.
fuzz_one() {
  local t=$1 seeds=$root/tests/fuzz/corpus/$1 work=$build/corpus/$1   # what it finds; not committed
  local log=$build/fuzz_$t.log start rc took execs counts cov
  mkdir -p "$work" "$seeds"
  echo "fuzz_$t for ${secs}s (seeds: tests/fuzz/corpus/$t, $(ls "$seeds" | wc -l) files)"
  start=$(date +%s)
  # -rss_limit_mb: the decode shapes are small; anything near 2 GB is a leak.
  "$build/bin/fuzz_$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
    "$work" "$seeds" >"$log" 2>&1 && rc=0 || rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  counts=$(sed -n 's/^fuzz counts: //p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
  if [ "$rc" -ne 0 ]; then
    echo "   FAILED after ${took}s, ${execs:-?} executions (exit $rc); last lines of build-fuzz/fuzz_$t.log:"
    tail -n 40 "$log" | sed 's/^/   | /'
    ls "$build/artifacts" | grep "^$t-" | sed 's/^/   reproducer: build-fuzz\/artifacts\//' || true
  else
    echo "   ok, ${execs:-?} executions in ${took}s, ${cov:-cov ?}; ${counts:-}"
  fi
  return "$rc"
}

step() { printf '== fuzz: %s\n' "$*"; }
source "$root/scripts/par.sh"
start_all=$(date +%s)
for t in "${targets[@]}"; do
  JOBS=$jobs par "fuzz_$t" fuzz_one "$t"
done
fail=0
par_wait || fail=1

echo "== fuzz: ${#targets[@]} targets in $(( $(date +%s) - start_all ))s"
[ "$fail" = 0 ] && echo "fuzz: all ${#targets[@]} targets clean" || echo "fuzz: FAILED"
exit "$fail"
