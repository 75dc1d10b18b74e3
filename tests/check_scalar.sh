#!/bin/sh
# Fails if the scalar reference's object code holds packed (vector) float
# arithmetic, i.e. if the compiler auto-vectorized the textbook code.
# usage: check_scalar.sh OBJDUMP LIBQKV_SCALAR.a
set -eu
objdump=$1 lib=$2
# x86: packed single/double SSE/AVX arithmetic (mulps, vfmadd231ps, addpd...);
# AArch64: arithmetic on vector arrangements (fmul v0.4s ...).
packed='\b(v?(add|sub|mul|div|max|min|sqrt|fmadd[0-9]*|fnmadd[0-9]*)p[sd])\b|\bf(add|mul|mla|fma|sub|max|min)[a-z]*[[:space:]]+v[0-9]+\.[0-9]+[sd]\b'
hits=$("$objdump" -d --no-show-raw-insn "$lib" | grep -Ec "$packed" || true)
if [ "$hits" -ne 0 ]; then
  "$objdump" -d --no-show-raw-insn "$lib" | grep -E "$packed" | head
  echo "scalar reference: $hits packed vector instructions"
  exit 1
fi
echo "scalar reference: no packed vector arithmetic"
