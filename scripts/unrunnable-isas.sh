#!/usr/bin/env bash
# Prints the meson options that leave out the x86 kernels this CPU cannot
# run, for the builds that exist only to run code (the ASan, TSan and
# fuzzing builds): there they were compiled for nothing, and they took most
# of each build (on a 2-core AVX2 machine, each of the AVX-512, AVX512-BF16
# and AMX kernel files 70-93 s against AVX2's 44; on a Zen 5, which has
# AVX-512 and AVX512-BF16 but no AMX, amx.c took 48 s of the ASan build and
# 80 s of the fuzzing build). An ISA is left out when a CPUID flag it needs
# is missing from /proc/cpuinfo, and so is every ISA above it: the
# AVX-512 family without avx512f/bw/dq/vl, avx512bf16 and amx without
# avx512_bf16, amx without amx_tile or amx_bf16.
# Each ISA then runs once in such a build, natively or emulated: -Demulate
# names the ones left out, which tests/meson.build compiles against the C
# emulation of AVX-512 and of the tile instructions (kernels/avx512/
# emulate.h, kernels/amx/tile.h) for checkasm's avx512-emu, avx512bf16-emu
# and amx-emu, and none that the CPU runs natively. Emulating those too
# cost the Zen 5's ASan build about 190 s of its 440 s of compiling (the
# emulated avx512bf16.c alone 116 s), to test again under ASan what ran
# there natively; the valgrind job still runs every emulation (on the test
# build, whose -Demulate is all three). scripts/test.sh's own build
# compiles every kernel, warnings as errors, on every machine.
#   scripts/unrunnable-isas.sh    prints e.g. "-Damx=disabled -Demulate=amx"
set -euo pipefail
[ "$(uname -m)" = x86_64 ] && [ -r /proc/cpuinfo ] || exit 0
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
if ! has avx512f avx512bw avx512dq avx512vl; then
  echo "-Davx512=disabled -Davx512bf16=disabled -Damx=disabled -Demulate=avx512,avx512bf16,amx"
elif ! has avx512_bf16; then
  echo "-Davx512bf16=disabled -Damx=disabled -Demulate=avx512bf16,amx"
elif ! has amx_tile amx_bf16; then
  echo "-Damx=disabled -Demulate=amx"
else
  echo "-Demulate="
fi
