#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the test suite on
# this CPU (with the examples and the Python binding's tests), the same
# runner under qemu CPU models without AVX (Nehalem) and without AVX-512
# (Haswell), the installed library from every side a user meets it
# (scripts/test-install.sh), a clang build, the AArch64 cross build under qemu, the
# sanitizer and fuzzing jobs and the report smoke test.
#   scripts/test.sh [--fuzz-seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."

# 30 s per target (5 targets): the whole run had reached 27-29 minutes on a
# busy 2-core machine, against the 30 it must stay well under; the seed
# corpora still run in full every time, and scripts/fuzz.sh alone runs
# longer (60 s by default).
fuzz_seconds=30
while [ $# -gt 0 ]; do
  case "$1" in
    --fuzz-seconds) fuzz_seconds=$2; shift 2 ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

start=$SECONDS
# Each step says when it began, so a slow job shows in CI's log.
step() { printf '\n=== [%d s] %s\n' "$((SECONDS - start))" "$*"; }
source scripts/par.sh

step "setup: Debian packages"
bash scripts/setup.sh

step "build (release with symbols, warnings are errors)"
if [ ! -d build-test ]; then
  # -Ddebug=true: symbols for the valgrind job, which runs this build.
  # -fno-var-tracking: the locations of optimised variables, which nothing
  # here reads, took 40% of each x86 kernel's compile (avx2.c 21.9 s with
  # them, 13.1 without); file:line and the call stacks stay.
  meson setup build-test --werror -Ddebug=true -Dc_args=-fno-var-tracking
fi
ninja -C build-test

step "test suite on this CPU"
meson test -C build-test --print-errorlogs

step "MPI: one sequence's KV sharded across 4 ranks, merged with qkv_merge_states"
mpi_example=build-test/examples/mpi_attention
if [ ! -x "$mpi_example" ]; then
  # A build directory configured before MPI was installed has not looked again.
  meson setup --reconfigure build-test >/dev/null
  ninja -C build-test
fi
# Open MPI refuses to start as root unless told twice; CI runs as root.
mpi_env=()
if [ "$(id -u)" -eq 0 ]; then mpi_env=(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1); fi
env "${mpi_env[@]}" mpirun --oversubscribe -np 4 "$mpi_example"
env "${mpi_env[@]}" mpirun --oversubscribe -np 3 "$mpi_example" --kv-len=1001 --ring-len=333 --seed=3

# qemu-user's x86 CPU models: the same binary must pick only what the
# model has, and refuse (not crash on) a forced ISA it lacks.
checkasm=build-test/tests/checkasm
stack=build-test/tests/stack
qemu_x86() { qemu-x86_64 -cpu "$1" "${@:2}" 2> >(grep -v 'TCG doesn.t support' >&2); }
# The SIMD ISAs compiled in (qkv info's "built" column): each must be refused
# with its reason on a model that lacks it.
simd_built=$(build-test/tools/qkv info | awk '/^  [a-z]/ && $2 == "built" && $1 != "scalar" {print $1}')
nehalem() {
  qemu_x86 Nehalem $checkasm --quick --expect-isas=scalar --expect-best=scalar
  qemu_x86 Nehalem build-test/tests/convert --quick
  qemu_x86 Nehalem build-test/tests/batch --quick
  qemu_x86 Nehalem build-test/tests/merge --quick
  qemu_x86 Nehalem build-test/tests/exp_tanh --quick   # every build skipped
  qemu_x86 Nehalem $stack
  for isa in $simd_built; do
    QKV_ISA=$isa qemu_x86 Nehalem $checkasm --function=dispatch --expect-isas=scalar
    # The error detail says why (the missing CPUID bit), and qkv info too.
    QKV_ISA=$isa qemu_x86 Nehalem build-test/tests/errdetail
  done
  qemu_x86 Nehalem build-test/tests/errdetail
  qemu_x86 Nehalem build-test/tools/qkv info | tee build-test/qkv-info-nehalem.txt
  grep -q '^  avx2 .*the CPU lacks AVX2* (CPUID' build-test/qkv-info-nehalem.txt
}
haswell() {
  local isas=scalar isa
  if grep -q 'QKV_HAVE_AVX2 1' build-test/qkv_config.h; then isas=scalar,avx2; fi
  # --native: the emulated AVX-512 family already ran in the native suite.
  qemu_x86 Haswell $checkasm --quick --native --expect-isas=$isas --expect-best=${isas##*,}
  qemu_x86 Haswell build-test/tests/convert --quick
  qemu_x86 Haswell build-test/tests/batch --quick
  qemu_x86 Haswell build-test/tests/merge --quick
  qemu_x86 Haswell build-test/tests/exp_tanh --quick   # AVX2 and the emulated AVX-512
  qemu_x86 Haswell $stack
  for isa in $(echo "$simd_built" | grep -vx avx2); do
    QKV_ISA=$isa qemu_x86 Haswell $checkasm --function=dispatch --expect-isas=$isas
    QKV_ISA=$isa qemu_x86 Haswell build-test/tests/errdetail
  done
  qemu_x86 Haswell build-test/tests/errdetail
}
# The two models side by side (qemu-user runs each program on one core).
step "qemu-x86_64 -cpu Nehalem (no AVX, scalar only) and -cpu Haswell (AVX2, no AVX-512)"
par "qemu-x86_64 -cpu Nehalem" nehalem
par "qemu-x86_64 -cpu Haswell" haswell
par_wait

step "installed qkv: pkg-config, rpath, static, CMake, the qkv command, Python; no-SLEEF setup"
JOBS=${JOBS:-2} bash scripts/test-install.sh

# qkv as a Meson subproject of a user's project, whose default buildtype is
# debug: the driver at -O0, its kernels at -O2 (meson.build), and still
# within QKV_MAX_STACK_BYTES (tests/stack). The ISA options pass through;
# the two largest kernel files, which this step would only compile again,
# are left out (40 of its 70 s on 2 cores). It is the one debug build: a
# debug build of its own, for the stack bound, took 86 s more.
step "qkv as a Meson subproject (a debug build): its stack bound"
user=$(mktemp -d)
mkdir -p "$user/subprojects"
ln -s "$PWD" "$user/subprojects/qkv"
cp examples/seed.c "$user/"
cat > "$user/meson.build" <<'MESON'
project('user', 'c', default_options : ['c_std=c11'])
qkv = dependency('qkv', fallback : ['qkv', 'qkv_dep'],
                 default_options : ['bench=disabled', 'avx512bf16=disabled', 'amx=disabled'])
executable('seed', 'seed.c', dependencies : qkv)
MESON
meson setup "$user/build" "$user" --werror >/dev/null
sub_stack=subprojects/qkv/tests/stack
grep -q -- '-O0' <(ninja -C "$user/build" -t commands "$sub_stack" | grep -m1 'dispatch/plan\.c')
grep -q -- '-O2' <(ninja -C "$user/build" -t commands "$sub_stack" | grep -m1 'kernels/avx2/\|kernels/neon/')
ninja -C "$user/build" seed "$sub_stack" >/dev/null
"$user/build/seed" | grep -q '0.577681 0.844638 0.155362 0.422319'
"$user/build/$sub_stack"
config=$user/build/subprojects/qkv/qkv_config.h
grep -q 'QKV_BUILT_ISAS(X) X(scalar)' "$config"
if grep -E 'X\((avx512bf16|amx)\)' "$config"; then
  echo "FAIL: the subproject's ISA options did not pass through"; exit 1
fi
echo "subproject build: ok"
rm -rf "$user"

# Users build with clang as often as with gcc, and the two warn about
# different things (examples/compare_isas.c's RAND_MAX into a float passed
# gcc 12 and failed clang 14 -Werror), and inline differently, which moves
# the deepest stack frame: the same tree with clang at -O3, warnings as
# errors, its checkasm and its stack bound. About 50 s on 2 cores. It is
# also the one build with the phase timers (-Dphase_timers=true, 48 bytes
# more in a job's frame), so that they compile and `qkv bench --phases`
# is checked: every SIMD ISA's prefill spends time in Q·Kᵀ, the softmax
# and P·V, its decode in the feed too, and the phases never add up to
# more than the calls took. Every kernel file is compiled, but on the C
# emulation only the ISAs this CPU cannot run (scripts/unrunnable-isas.sh's
# -Demulate), as in the ASan build: each ISA's checkasm runs once here
# (on a Zen 5 the emulated avx512.c and avx512bf16.c were 59 of its 190 s
# of compiling).
step "clang release build with phase timers (warnings are errors): checkasm --quick, stack bound, qkv bench --phases"
if [ ! -f build-clang/build.ninja ]; then
  CC=clang meson setup build-clang --buildtype=release --werror -Dbench=disabled \
    -Dphase_timers=true $(bash scripts/unrunnable-isas.sh | grep -o -- '-Demulate=[^ ]*') >/dev/null
fi
ninja -C build-clang >/dev/null
build-clang/tests/checkasm --quick
build-clang/tests/stack
# $1: the phases (columns of the table: 2 job ... 7 pv) that must be > 0.
# (Not through `tee /dev/stderr`: where stderr is a file, as in CI's log,
# tee opens it anew and truncates it.)
phases_check() {
  local want=$1 table
  shift
  table=$(build-clang/tools/qkv bench --no-probe --repeats 1 --min-time 0 --phases "$@")
  printf '%s\n' "$table"
  awk -v want="$want" '
      /^where the time goes/ { on = 1; next }
      on && $1 != "isa" && $1 != "scalar" {
        rows++
        n = split(want, c, ",")
        for (i = 1; i <= n; i++)
          if (!($c[i] > 0)) { print "FAIL: " $1 ": phase column " c[i] " is " $c[i]; bad = 1 }
        if ($8 < -1) { print "FAIL: " $1 ": the phases add up to more than the calls took"; bad = 1 }
      }
      END { if (!rows) { print "FAIL: no phase rows"; bad = 1 } exit bad }' <<<"$table"
}
phases_check 5,6,7 --heads 4 --q-len 256 --kv-len 256 --dim 64 --causal
phases_check 4,5,6,7 --heads 8/2 --kv-len 8192 --warm

step "AArch64: cross build, NEON and SVE (128/256/512-bit) under qemu-aarch64"
JOBS=${JOBS:-2} bash scripts/test-aarch64.sh

step "sanitizers: ASan+UBSan suite, valgrind memcheck, TSan concurrency"
QKV_VALGRIND_BUILD=build-test bash scripts/test-sanitizers.sh

step "differential fuzzing, $fuzz_seconds s per target"
bash scripts/fuzz.sh "$fuzz_seconds"

# On the test build, which has the benchmark: a build of its own took
# 40-80 s more.
step "benchmark report smoke test (report.sh --quick)"
QKV_REPORT_BUILD=$PWD/build-test bash scripts/test-report.sh

step "all tests passed in $((SECONDS - start)) s"
