#!/usr/bin/env bash
# Prints the meson options that leave out the x86 kernels this CPU cannot
# run, for the builds that exist only to run code (the ASan, TSan and
# fuzzing builds): there they were compiled for nothing, and they took most
# of each build (on a 2-core AVX2 machine, each of the AVX-512, AVX512-BF16
# and AMX kernel files 70-93 s against AVX2's 44). Only when the CPU lacks
# AVX-512 altogether (a flag missing from /proc/cpuinfo): every AVX-512
# machine builds them all. The AVX-512 family's logic is still tested in
# the ASan build: tests/meson.build compiles the same files against the C
# emulation of AVX-512 (kernels/avx512/emulate.h) for checkasm's
# avx512-emu, avx512bf16-emu and amx-emu. scripts/test.sh's own build
# compiles every kernel, warnings as errors, on every machine.
#   scripts/unrunnable-isas.sh    prints e.g. "-Davx512=disabled ..." or nothing
set -euo pipefail
[ "$(uname -m)" = x86_64 ] && [ -r /proc/cpuinfo ] || exit 0
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
for f in avx512f avx512bw avx512dq avx512vl; do
  if [[ $flags != *" $f "* ]]; then
    echo "-Davx512=disabled -Davx512bf16=disabled -Damx=disabled"
    exit 0
  fi
done
