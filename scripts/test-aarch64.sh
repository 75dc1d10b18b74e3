#!/usr/bin/env bash
# Cross-builds qkv for AArch64 in build-aarch64 and runs it under qemu-aarch64
# on the CPU models that matter for dispatch:
#   neoverse-n1               NEON, no SVE, no BF16 or FHM: qkv must pick neon
#                             and refuse sve, neonbf16 and svebf16
#   max,sve128=on / sve256 / sve512
#                             SVE and BF16 at three vector lengths: qkv must
#                             pick svebf16 (and run neonbf16 and sve too)
#   max,sve=off               BF16 and FHM without SVE: qkv must pick neonbf16
#   cortex-a53                no FHM (nor BF16): neon, as on neoverse-n1
#   max,sve1024=on / sve2048  checkasm on SVE's longest vectors
# For neoverse-n1 and max,sveN: the test suite (meson test, through the
# cross file's exe_wrapper; qemu-user reads QEMU_CPU itself); for every
# model, checkasm's dispatch assertions (what is picked, what is refused)
# and qkv info; at 1024 and 2048 bits checkasm --quick on sve and svebf16
# (every other ISA there runs in the suites too). The soak suite is left out: its RSS-growth
# assertions measure qemu's own memory (its translation cache and per-thread
# state grow as the guest creates threads: +800 MiB over its pool cycles),
# which says nothing about qkv, and it alone would take 35 s per CPU model;
# the native suite runs it. Then the benchmark, if it is built, once on a
# tiny filter to prove it runs (timings under qemu mean nothing).
#
#   scripts/test-aarch64.sh
# Environment: JOBS (ninja -j, default: all cores).
# Needs what scripts/setup.sh installs (without --no-arm). Exits non-zero on
# the first failure; prints every command it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
  echo "usage: scripts/test-aarch64.sh   (no options; JOBS=N for ninja -j)" >&2
  exit 2
fi

build=build-aarch64
cross=cross/aarch64-linux-gnu.ini
start=$SECONDS

step() { printf '\n=== [%d s] %s\n' "$((SECONDS - start))" "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

# par and par_wait: the quick runs below go two at a time.
source scripts/par.sh

for tool in aarch64-linux-gnu-gcc qemu-aarch64 meson ninja pkg-config; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-aarch64.sh: $tool not found; run scripts/setup.sh first" >&2
    exit 1
  fi
done

# The qemu command line of the cross file's exe_wrapper, read from the file
# itself so that the direct runs below use exactly what meson test uses.
mapfile -t qemu < <(python3 - "$cross" <<'PY'
import ast, configparser, sys
c = configparser.ConfigParser()
c.read(sys.argv[1])
print('\n'.join(ast.literal_eval(c['binaries']['exe_wrapper'])))
PY
)

step "cross build ($build)"
if [ ! -f "$build/build.ninja" ]; then
  run meson setup "$build" --cross-file "$cross" --werror
fi
run ninja -C "$build" ${JOBS:+-j "$JOBS"}
# Every Arm ISA must really be in the build: a silently missing one would
# let the checks below pass on scalar alone.
for isa in NEON SVE NEONBF16 SVEBF16; do
  if ! grep -q "QKV_HAVE_$isa 1" "$build/qkv_config.h"; then
    echo "test-aarch64.sh: $isa kernels were not built (is libsleef-dev:arm64 installed?)" >&2
    exit 1
  fi
done

checkasm=$build/tests/checkasm

# One emulated CPU: the suite (with suite=full; it runs checkasm over every
# ISA the CPU has), then what qkv must choose and refuse there. $1
# QEMU_CPU, $2 the ISAs qkv must report as supported, $3 the best one, $4
# the ISAs this CPU lacks, space-separated (forcing each must give
# QKV_ERR_UNSUPPORTED, and qkv info must name the missing AT_HWCAP bit),
# $5 full or dispatch (the choice alone; checkasm --quick for the CPUs
# that need it runs beside the others, below), $6 a meson suite the full
# run leaves out besides soak.
on_cpu() {
  local cpu=$1 isas=$2 best=$3 lacking=$4 suite=$5 skip=${6:-} isa
  if [ "$suite" = full ]; then
    step "QEMU_CPU=$cpu: test suite"
    # Emulated, the examples' 120 s limit is close: compare_isas ran 33 s on
    # neoverse-n1 and passed 120 s on max,sve128 while other work shared
    # the machine's two cores.
    run env QEMU_CPU="$cpu" meson test -C "$build" --print-errorlogs --no-suite soak \
      ${skip:+--no-suite "$skip"} --timeout-multiplier 3
  fi
  step "QEMU_CPU=$cpu: dispatch picks $best, supports exactly $isas"
  run env QEMU_CPU="$cpu" "${qemu[@]}" "$checkasm" --function=dispatch --expect-isas="$isas" \
      --expect-best="$best"
  run env QEMU_CPU="$cpu" QKV_ISA="$best" "${qemu[@]}" "$checkasm" --function=dispatch \
      --expect-isas="$isas" --expect-best="$best"
  for isa in $lacking; do
    run env QEMU_CPU="$cpu" QKV_ISA="$isa" "${qemu[@]}" "$checkasm" --function=dispatch \
        --expect-isas="$isas" --expect-best="$best"
  done
  if [ -x "$build/tools/qkv" ]; then
    step "QEMU_CPU=$cpu: qkv info chooses $best${lacking:+ and says why not $lacking}"
    run env QEMU_CPU="$cpu" "${qemu[@]}" "$build/tools/qkv" info | tee "$build/qkv-info.txt"
    grep -q "^  $best .*<- chosen" "$build/qkv-info.txt"
    for isa in $lacking; do
      grep -q "^  $isa .*AT_HWCAP" "$build/qkv-info.txt"
    done
  fi
}

# Without checkasm (suite checkasm): its scalar and neon runs are the
# 128-bit SVE model's too, which runs every ISA it has, and they were half
# of this suite's time; what neoverse-n1 adds is neon as the ISA every other
# test reaches through the dispatcher.
on_cpu neoverse-n1 scalar,neon neon "sve neonbf16 svebf16" full checkasm
# The whole suite at 128 bits; at 256 and 512 checkasm draws fewer shapes
# (--quick) over every ISA: what depends on the vector length is in the
# kernels, and on some hosts qemu runs these vector lengths far slower (on
# a Sapphire Rapids class Xeon: checkasm --quick 340 s at 256 and 512 bits,
# the whole checkasm at 128 bits 83 s, at 256 past its 600-s timeout).
on_cpu "max,sve128=on" scalar,neon,sve,neonbf16,svebf16 svebf16 '' full
for bits in 256 512; do
  on_cpu "max,sve$bits=on" scalar,neon,sve,neonbf16,svebf16 svebf16 '' dispatch
done
# BF16 without SVE, and a core without FHM: what qkv picks and refuses (the
# suites above ran every ISA's kernels already, neonbf16's among them).
on_cpu max,sve=off scalar,neon,neonbf16 neonbf16 "sve svebf16" dispatch
on_cpu cortex-a53 scalar,neon neon "neonbf16 svebf16" dispatch
# The longest vectors, where one vector holds 32 or 64 rows of a job (at
# 2048 bits a masked GEMM tile must shrink to fit the workspace, and block
# dtypes cannot take the dot forms). qemu caps the vector length at 512 bits
# unless sve-default-vector-length (in bytes) says otherwise.
# svebf16 too: at 2048 bits its tiles fit beside a 64-lane score tile for
# few shapes (strict mode, small head_dim), the others fall back to sve's
# f32 kernels (bf16_ws in kernels/arm/bf16_tmpl.h); both must be right.
step "checkasm --quick at 256 and 512 bits (every ISA), 1024 and 2048 (sve, svebf16)"
for bits in 256 512; do
  par "QEMU_CPU=max,sve$bits=on: checkasm --quick" env QEMU_CPU="max,sve$bits=on" "${qemu[@]}" \
      "$checkasm" --quick
done
for bits in 1024 2048; do
  for isa in sve svebf16; do
    par "QEMU_CPU=max,sve$bits=on: checkasm on $isa" \
        env QEMU_CPU="max,sve$bits=on,sve-default-vector-length=$((bits / 8))" "${qemu[@]}" \
        "$checkasm" --quick --isa=$isa
  done
done
par_wait

bench=$build/bench/qkv_bench
if [ -x "$bench" ]; then
  step "benchmark smoke run (under qemu: proves it runs, timings mean nothing)"
  # The smallest shape of each kind, for each Arm ISA, once.
  run env QEMU_CPU=max,sve256=on "${qemu[@]}" "$bench" --qkv_set=quick --qkv_probe=0 \
      --qkv_reps=1 --qkv_min_time=0.001 --qkv_threads=1 \
      '--benchmark_filter=/(neon|sve|neonbf16|svebf16)/(m:128/|n:128/d:64/causal:1/|kv_len:256/)'
else
  step "benchmark not built ($bench missing): skipped"
fi

step "aarch64: all passed in $((SECONDS - start)) s"
