#!/usr/bin/env bash
# Sanitizer and memory jobs (issue 6), each in its own build directory:
#   asan      ASan+UBSan build, the whole `meson test` suite
#   valgrind  memcheck on checkasm --quick, the reliability tests, alloc, convert, merge, stack and
#             errdetail, in QKV_VALGRIND_BUILD (a built tree; default: its own build-rel-valgrind)
#   tsan      TSan build, tests/concurrency, soak --quick and errdetail (per-thread details)
#   scripts/test-sanitizers.sh [asan] [valgrind] [tsan]    default: all three
# Exits non-zero if any job fails; prints each command and a summary.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs_n=${QKV_JOBS:-2}
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(asan valgrind tsan)

results=()
fail=0
say() { echo "+ $*"; }
step() { echo "  $*:"; }   # what scripts/par.sh's par_wait prints before each output
source "$root/scripts/par.sh"
run() { say "$@"; "$@"; }

# -O1: sanitizer builds of the SIMD templates are slow to compile at -O2 on
# two cores, and -O1 keeps the stacks readable. -fno-var-tracking (as in
# scripts/test.sh): reports keep file:line, and the ASan build of avx2.c
# takes 27.6 s instead of 38.8. No -Dbench: the benchmark
# has no sanitizer job.
setup() {   # dir, then meson options
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    # shellcheck disable=SC2046  # word splitting wanted: the options
    run meson setup "$dir" --buildtype=plain -Dbench=disabled \
      $(bash "$root/scripts/unrunnable-isas.sh") "$@" >/dev/null || return 1
  fi
  say ninja -C "$dir" -j"$jobs_n"
  ninja -C "$dir" -j"$jobs_n" >/dev/null || { ninja -C "$dir" -j1 | tail -n 30; return 1; }
}

timed() {   # name, command...: runs, records pass/fail and the seconds taken
  local name=$1; shift
  local t0=$(date +%s)
  if "$@"; then
    results+=("$name: ok ($(( $(date +%s) - t0 ))s)")
  else
    results+=("$name: FAILED ($(( $(date +%s) - t0 ))s)")
    fail=1
  fi
}

# ---- (a) ASan + UBSan: the whole suite -----------------------------------
job_asan() {
  # b_lundef=false: the shared libqkv leaves the sanitizer runtime's
  # symbols to the executable. -fno-sanitize-recover=all: a UBSan report
  # fails the test instead of printing and going on.
  setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="-O1 -g -fno-var-tracking -fno-omit-frame-pointer -fno-sanitize-recover=all" || return 1
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run meson test -C build-asan --print-errorlogs --num-processes "$jobs_n" \
    --timeout-multiplier 4
}

# ---- (b) valgrind memcheck ------------------------------------------------
# One test: its output in $vg_build/valgrind-EXE.log, its tally
# line (or, when it fails, the log's tail) on stdout.
valgrind_one() {
  local exe=$1 log=$vg_build/valgrind-$1.log
  shift
  if "$@" >"$log" 2>&1; then
    grep -E 'passed, [0-9]+ failed' "$log" | tail -n 1
  else
    echo "FAILED; last lines:"
    tail -n 30 "$log"
    return 1
  fi
}

vg_build=${QKV_VALGRIND_BUILD:-build-rel-valgrind}
job_valgrind() {
  # An optimised build with symbols: scripts/test.sh passes its release
  # build (built with -Ddebug=true) rather than build a third tree here.
  # valgrind's virtual CPU has no AVX-512, so the library's own detection
  # drops to AVX2 there: the run shows which ISAs each test covered.
  if [ "$vg_build" = build-rel-valgrind ]; then
    setup build-rel-valgrind -Dc_args="-O2 -g -fno-var-tracking" || return 1
  fi
  local vg=(valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
            --track-origins=yes)
  local b=$vg_build/tests ok=0 t exe
  # Each test under valgrind is one process on one core (valgrind runs a
  # program's threads one at a time): scripts/par.sh runs jobs_n at once.
  for t in "checkasm --quick" "badinput" "concurrency --quick" "soak --quick" "alloc" \
           "convert --quick" "merge --quick" "stack" "errdetail"; do
    exe=${t%% *}
    if [ ! -x "$b/$exe" ]; then echo "valgrind: $b/$exe not built"; ok=1; continue; fi
    # shellcheck disable=SC2086
    JOBS=$jobs_n par "valgrind $t" valgrind_one "$exe" "${vg[@]}" "$b/"$t
  done
  par_wait || ok=1
  return $ok
}

# ---- (c) ThreadSanitizer ----------------------------------------------------
job_tsan() {
  setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dc_args="-O1 -g -fno-var-tracking" || return 1
  # Some kernels randomise the address space more than TSan's fixed memory
  # layout allows ("unexpected memory mapping"); setarch -R turns address
  # randomisation off for this one process when that is the case.
  local pre=()
  if command -v setarch >/dev/null && setarch "$(uname -m)" -R true 2>/dev/null; then
    pre=(setarch "$(uname -m)" -R)
  fi
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
  local ok=0
  for t in "concurrency" "soak --quick" "errdetail"; do
    say "${pre[@]}" "build-tsan/tests/$t"
    # shellcheck disable=SC2086
    if ! "${pre[@]}" build-tsan/tests/$t >"build-tsan/tsan-${t%% *}.log" 2>&1; then
      echo "tsan: $t FAILED; last lines:"; tail -n 40 "build-tsan/tsan-${t%% *}.log"; ok=1
    else
      echo "  $(grep -E '^concurrency:|passed, [0-9]+ failed' "build-tsan/tsan-${t%% *}.log" | tr '\n' ' ')"
    fi
  done
  return $ok
}

start=$(date +%s)
for j in "${want[@]}"; do
  case "$j" in
    asan) echo "== sanitizers: (a) ASan+UBSan, whole meson test suite (build-asan/)"; timed "asan+ubsan meson test" job_asan ;;
    valgrind) echo "== sanitizers: (b) valgrind memcheck ($vg_build/)"; timed "valgrind memcheck" job_valgrind ;;
    tsan) echo "== sanitizers: (c) TSan concurrency (build-tsan/)"; timed "tsan concurrency" job_tsan ;;
    *) echo "test-sanitizers.sh: unknown job $j (asan, valgrind, tsan)" >&2; exit 2 ;;
  esac
done
echo "== sanitizer summary ($(( $(date +%s) - start ))s)"
for r in "${results[@]}"; do echo "   $r"; done
[ "$fail" = 0 ] && echo "sanitizers: all jobs clean" || echo "sanitizers: FAILED"
exit "$fail"
