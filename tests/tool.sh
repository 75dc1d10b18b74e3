#!/usr/bin/env bash
# The qkv command: `info` names every ISA and the chosen one (and why a bad
# QKV_ISA cannot run), `bench` runs a small shape on every runnable ISA
# within the accuracy contract, in text and valid JSON, a dtype this build
# lacks ends with status 3 and one line, a bad option with status 2.
#   tests/tool.sh path/to/qkv
set -uo pipefail
qkv=$1
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
py=/usr/bin/python3

out=$("$qkv" info); rc=$?
echo "$out"
check "info exits 0" '[ $rc -eq 0 ]'
for isa in scalar avx2 avx512 neon sve avx512bf16 amx neonbf16 svebf16; do
  check "info lists $isa" 'grep -q "^  $isa " <<<"$out"'
done
check "info names the chosen ISA" 'grep -q "<- chosen" <<<"$out"'

out=$(QKV_ISA=AVX2 "$qkv" info)
check "info explains QKV_ISA=AVX2" 'grep -q "QKV_ISA=AVX2: unknown ISA name; names are lower case: avx2" <<<"$out"'

out=$("$qkv" bench --heads 4/2 --q-len 3 --kv-len 70 --dim 24 --causal --repeats 2 \
      --min-time 0 --no-probe); rc=$?
echo "$out"
check "bench exits 0" '[ $rc -eq 0 ]'
check "bench has a scalar row" 'grep -q "^scalar " <<<"$out"'

# bench_json WHAT TOL PY ARGS...: `qkv bench ARGS` in JSON exits 0, is
# valid, every ISA ran and is within TOL of scalar (a Python expression of
# x, the ISA's result), and the assertions PY on r, the JSON, hold.
# Tolerance: the header's accuracy contract, 1e-5 absolute against the
# double oracle for inputs in [-1, 1]; scalar is within it too, so two
# ISAs differ by at most 2e-5. --warm: one copy of K and V (the first bench
# above fills the copies a decode-like shape cycles through, 128 MiB or
# more, seconds each time).
bench_json() {
  local what=$1 tol=$2 asserts=$3 json rc
  shift 3
  json=$("$qkv" bench "$@" --repeats 1 --min-time 0 --json --no-probe --warm); rc=$?
  check "bench $what exits 0" '[ $rc -eq 0 ]'
  [ -x $py ] || return 0
  check "bench $what: valid JSON, every ISA ok and within its tolerance of scalar" \
    '$py -c "
import json, sys
r = json.loads(sys.argv[1])
assert r[\"results\"] and all(x[\"status\"] == \"ok\" for x in r[\"results\"]), r
assert all(x[\"max_abs_err\"] <= eval(sys.argv[2]) for x in r[\"results\"]), r
exec(sys.argv[3])
" "$json" "$tol" "$asserts"'
}

bench_json --json 2e-5 '
assert r["shape"]["v_dim"] == 8 and r["shape"]["window"] == 7, r["shape"]
assert r["flops_per_call"] > 0' \
  --heads 4/2 --q-len 5 --kv-len 100 --dim 16 --v-dim 8 --window 7 --threads 2

bench_json "--kv-layout token-major" 2e-5 '
assert r["shape"]["kv_layout"] == "token-major", r["shape"]' \
  --heads 8/2 --kv-len 300 --dim 32 --kv-layout token-major
"$qkv" bench --kv-layout rows >/dev/null 2>&1; rc=$?
check "bad --kv-layout: status 2" '[ $rc -eq 2 ]'

# BF16 mode: ISAs with bf16 tiles within qkv.h's bound (6e-3 for inputs in
# [-1, 1] at the default scale) of the strict scalar result, the others
# running strict mode within 2e-5.
bench_json "--fpmath bf16" \
  '6e-3 + 1e-5 if x["isa"] in ("avx512bf16", "amx", "neonbf16", "svebf16") else 2e-5' '
assert r["shape"]["fpmath"] == "bf16", r["shape"]' \
  --heads 2 --q-len 40 --kv-len 100 --dim 32 --fpmath bf16
"$qkv" bench --fpmath fast >/dev/null 2>&1; rc=$?
check "bad --fpmath: status 2" '[ $rc -eq 2 ]'

# Paged K/V through a shuffled page table, the last page partly used,
# both vLLM layouts; GB/s counts the keys read, not the pages.
for layout in head-major token-major; do
  bench_json "--page-size 17 --kv-layout $layout" 2e-5 '
assert r["shape"]["page_size"] == 17, r["shape"]
assert r["kv_bytes_per_call"] == 2 * 2 * 2 * 150 * 32 * 4, r' \
    --batch 2 --heads 4/2 --kv-len 150 --dim 32 --page-size 17 --kv-layout $layout
done
"$qkv" bench --page-size x >/dev/null 2>&1; rc=$?
check "bad --page-size: status 2" '[ $rc -eq 2 ]'

out=$("$qkv" bench --dtype f16 --kv-len 64 --no-probe --warm 2>&1); rc=$?
echo "$out"
if [ $rc -eq 3 ]; then
  check "--dtype f16 unsupported: one line" '[ $(wc -l <<<"$out") -eq 1 ] && grep -q "not supported" <<<"$out"'
else
  check "--dtype f16 runs" '[ $rc -eq 0 ]'
fi

"$qkv" bench --heads 3/x >/dev/null 2>&1; rc=$?
check "bad option: status 2" '[ $rc -eq 2 ]'
"$qkv" bench --heads 3/2 --kv-len 10 --no-probe >/dev/null 2>&1; rc=$?
check "bad shape: status 2" '[ $rc -eq 2 ]'
# Counts past their limits are refused, not cut to fit: 2^32 + 1 threads
# once became 1 through an unsigned cast, 65 repeats became 64.
"$qkv" bench --threads 4294967297 --no-probe >/dev/null 2>&1; rc=$?
check "--threads 2^32+1: status 2" '[ $rc -eq 2 ]'
"$qkv" bench --repeats 65 --no-probe >/dev/null 2>&1; rc=$?
check "--repeats 65: status 2" '[ $rc -eq 2 ]'
# The help is taken whole before grep looks at it: `qkv --help | grep -q`
# under pipefail failed whenever grep quit on its match before qkv wrote
# the rest (the text passed stdio's 4096-byte buffer: a second write, then
# SIGPIPE; seen under ASan).
help=$("$qkv" --help); rc=$?
check "--help is the reference" '[ $rc -eq 0 ] && grep -q -- "--kv-len N" <<<"$help"'
check "--help prints no printf escapes" '! grep -q "%%" <<<"$help"'
help=$("$qkv" bench --help); rc=$?
check "bench --help too" '[ $rc -eq 0 ] && grep -q -- "--kv-len N" <<<"$help"'
exit $fail
