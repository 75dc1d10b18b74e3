#!/usr/bin/env bash
# CI smoke test of the benchmark report: `report.sh --quick` into a temporary
# folder must produce parseable Google Benchmark JSON (per group and merged),
# the Markdown table and the PNG plots, and `--compare` must read it back.
# Timings are not checked: CI machines are too noisy for that.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$root/scripts/report.sh" --quick --out "$tmp/report" >"$tmp/log" 2>&1 || {
  cat "$tmp/log" >&2; echo "test-report: report.sh --quick failed" >&2; exit 1; }

python3 - "$tmp/report" <<'PY'
import glob, json, os, sys

out = sys.argv[1]
fail = []

def check(cond, what):
    if not cond:
        fail.append(what)

try:
    with open(os.path.join(out, 'results.json')) as f:
        doc = json.load(f)
except (OSError, ValueError) as e:
    sys.exit('test-report: results.json: %s' % e)
benches = doc.get('benchmarks', [])
ctx = doc.get('context', {})
check(len(benches) > 0, 'results.json has benchmarks')
check(not any(b.get('error_occurred') for b in benches),
      'no benchmark reported an error: %s' % [b['name'] for b in benches if b.get('error_occurred')])
for key in ('cpu_model', 'qkv_isas', 'read_gbs', 'peak_gflops_scalar'):
    check(key in ctx, 'context has %s' % key)
kinds = {b['run_name'].split('/')[0] for b in benches}
for k in ('scores', 'softmax', 'weighted_sum', 'attention', 'decode'):
    check(k in kinds, 'benchmarks of kind %s ran' % k)
isas = ctx.get('qkv_isas', '').split(',')
impls = {b['run_name'].split('/')[1] for b in benches}
check(set(isas) <= impls, 'every supported ISA (%s) ran (ran: %s)' % (isas, sorted(impls)))
check(all('FLOPS' in b for b in benches if b['run_name'].startswith(('attention/', 'decode/'))),
      'fused benchmarks carry the FLOPS counter')

raw = glob.glob(os.path.join(out, 'raw', '*.json'))
check(len(raw) > 0, 'raw/ has per-group JSON')
# The implementations of a kind ran in one process, interleaved (so that
# a noisy minute does not fall on one column): one raw file per kind holds
# them all, OpenBLAS's multi-threaded rows apart.
ran_in = {}
for p in raw:
    try:
        with open(p) as f:
            for b in json.load(f).get('benchmarks', []):
                kind, impl = b['run_name'].split('/')[:2]
                threaded = impl == 'openblas' and '/threads:1' not in b['run_name'] and '/threads:' in b['run_name']
                if not threaded:
                    ran_in.setdefault(kind, set()).add(os.path.basename(p))
    except ValueError as e:
        fail.append('%s parses: %s' % (p, e))
check(all(len(files) == 1 for files in ran_in.values()),
      'each kind ran in one interleaved process: %s' % sorted(ran_in.items()))

md = os.path.join(out, 'report.md')
text = open(md).read() if os.path.exists(md) else ''
check('| case |' in text and 'Decode' in text and 'prefill' in text, 'report.md has the tables')
if set(isas) - {'scalar'}:
    check('| cap=50 d=' in text and 'of no cap' in text, 'report.md has the soft-cap row')
    check('where the time goes' in text and ' kv=q4_0 |' in text and '% of the ' in text,
          'report.md has the decode breakdown (from memory, in cache, the stream)')
if set(isas) & {'avx512bf16', 'amx', 'neonbf16', 'svebf16'}:
    check('bf16 Q/K/V, BF16 mode' in text, 'report.md has the paged BF16-mode prefill row')
# The 16-bit/quantized and paged rows time themselves against their
# baseline in one benchmark (bm_pair): real ratios, and the report says so.
import re
pair_re = re.compile(r'^(decode/[^/]+/kv_len:\d+((/page:\d+|/layout:token_major)(/kv:\w+)?|/kv:\w+)'
                     r'|attention/[^/]+/n:\d+/d:\d+/causal:\d/(kv:\w+|page:\d+)'
                     r'|softcap/[^/]+/n:\d+/d:\d+/causal:\d/cap:\d+)/threads:1(/|$)'
                     r'|batch/[^/]+/calls:one/threads:\d+(/|$)')
paired = [b for b in benches if pair_re.match(b['run_name'])]
if set(isas) - {'scalar'}:
    check(paired and all(b.get('vs_base', 0) > 0 and b.get('base_ms', 0) > 0 for b in paired),
          'the paired rows carry vs_base and base_ms: %s' % [b['run_name'] for b in paired if not b.get('vs_base')])
    check('measured paired' in text, 'report.md says which ratios were measured paired')

pngs = [os.path.basename(p) for p in glob.glob(os.path.join(out, '*.png'))]
for want in ('decode.png', 'threads.png'):
    check(want in pngs, '%s exists' % want)
check(any(p.startswith('prefill_d') for p in pngs), 'a prefill_d*.png exists')
for p in pngs:
    with open(os.path.join(out, p), 'rb') as f:
        check(f.read(8) == b'\x89PNG\r\n\x1a\n', '%s is a PNG' % p)

if fail:
    print('test-report: FAILED', file=sys.stderr)
    for f in fail:
        print('  - ' + f, file=sys.stderr)
    sys.exit(1)
print('test-report: %d benchmarks, %d raw files, %s' % (len(benches), len(raw), ', '.join(sorted(pngs))))
PY

"$root/scripts/report.sh" --compare "$tmp/report" "$tmp/report" >"$tmp/compare" 2>&1 || {
  cat "$tmp/compare" >&2; echo "test-report: --compare failed" >&2; exit 1; }
grep -q 'geometric mean of A/B over [0-9]* common benchmarks: 1.000' "$tmp/compare" || {
  cat "$tmp/compare" >&2; echo "test-report: --compare of a folder with itself is not 1.000" >&2; exit 1; }
# Each run's probes, B's over A's: a B whose probed bandwidth is twice A's.
mkdir "$tmp/faster"
python3 - "$tmp/report/results.json" "$tmp/faster/results.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc['context']['read_gbs'] = '%.2f' % (2 * float(doc['context']['read_gbs']))
json.dump(doc, open(sys.argv[2], 'w'))
PY
"$root/scripts/report.sh" --compare "$tmp/report" "$tmp/faster" >"$tmp/compare2" 2>&1 &&
  grep -q '^probes, A → B .*peak_gflops_scalar [0-9.]* → [0-9.]* (×1.00).*read_gbs [0-9.]* → [0-9.]* (×2.00)' "$tmp/compare2" || {
  cat "$tmp/compare2" >&2; echo "test-report: --compare does not show the probes of both runs" >&2; exit 1; }
# --filter and --threads reach the binary: only decode runs, at 1 and 2 threads.
"$root/scripts/report.sh" --quick --filter '^decode/' --threads 1,2 --out "$tmp/filtered" >"$tmp/log2" 2>&1 || {
  cat "$tmp/log2" >&2; echo "test-report: report.sh --quick --filter --threads failed" >&2; exit 1; }
python3 - "$tmp/filtered/results.json" <<'PY'
import json, sys
names = [b['run_name'] for b in json.load(open(sys.argv[1]))['benchmarks']]
bad = [n for n in names if not n.startswith('decode/')]
threads = {p for n in names for p in n.split('/') if p.startswith('threads:')}
if not names or bad or threads != {'threads:1', 'threads:2'}:
    sys.exit('test-report: --filter/--threads not honoured: %s' % names)
PY
# The OpenBLAS peer's kernels. The choice itself, for CPUs this machine is
# not: a generic core on an AVX2/AVX-512 CPU is replaced by the best the
# library ships; a core with AVX2 kernels, or a CPU without AVX2, is left.
python3 - "$root/scripts" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from report import pick_openblas_core as pick
avx2 = ['sse3', 'avx', 'avx2', 'fma']
avx512 = avx2 + ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512cd']
every = lambda core: True
cases = [
    (('Prescott', avx512 + ['avx512_bf16'], every), 'Cooperlake'),   # the issue's Xeon
    (('Prescott', avx512, every), 'SkylakeX'),
    (('Nehalem', avx512, lambda c: c == 'Haswell'), 'Haswell'),       # only Haswell shipped
    (('Core2', avx2, every), 'Haswell'),
    (('Sandybridge', avx2, lambda c: False), None),                  # nothing better shipped
    (('Haswell', avx512, every), None),                              # OpenBLAS's own AVX2 choice
    (('Zen', avx512 + ['avx512_bf16'], every), None),
    (('Cooperlake', avx512, every), None),
    (('Prescott', ['sse3', 'avx'], every), None),                    # no AVX2: generic is right
    (('', avx512, every), None),
]
bad = [(args[:2], want, pick(*args)) for args, want in cases if pick(*args) != want]
if bad:
    sys.exit('test-report: pick_openblas_core: %s' % bad)
PY
# Cells whose repetitions spread more than report.NOISY_CV carry the mark,
# and only those.
python3 - "$root/scripts" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import report
def agg(name, what, t):
    return {'name': name + '_' + what, 'run_name': name, 'run_type': 'aggregate',
            'aggregate_name': what, 'aggregate_unit': 'percentage' if what == 'cv' else 'time',
            'real_time': t, 'time_unit': 'ms', 'repetitions': 3, 'FLOPS': 1e9}
doc = {'context': {'qkv_isas': 'scalar,avx2,avx512'}, 'benchmarks': [
    agg('scores/scalar/n:256/d:64', 'median', 1.0), agg('scores/scalar/n:256/d:64', 'cv', 0.02),
    agg('scores/avx2/n:256/d:64', 'median', 0.5), agg('scores/avx2/n:256/d:64', 'cv', 0.25),
    agg('scores/avx512/n:256/d:64', 'median', 0.3)]}
md = report.render_markdown(doc, report.load_results(doc))
row = [l for l in md.splitlines() if l.startswith('| m=n=256 d=64 |')]
cells = row[0].strip('|').split('|')[1:] if row else []
marked = [c.strip().endswith(report.NOISY_MARK) for c in cells]
if marked != [False, True, False] or report.NOISY_MARK + ':' not in md:
    sys.exit('test-report: noisy cells not marked as they should be: %s' % row)
print('test-report: a cell whose repetitions spread %.0f%% is marked, 2%% and none are not'
      % 25)
PY
if grep -q QKV_BENCH_OPENBLAS "${QKV_REPORT_BUILD:-$root/build-report}/build.ninja" 2>/dev/null; then
  # End to end, as on an AVX2 CPU where OpenBLAS detected Prescott: the
  # peer runs on Haswell kernels (whatever OpenBLAS would pick here), and
  # says so; an OPENBLAS_CORETYPE the user set is kept.
  env -u OPENBLAS_CORETYPE QKV_REPORT_OPENBLAS_AUTO=Prescott QKV_REPORT_CPU_FLAGS='avx avx2 fma' \
    "$root/scripts/report.sh" --quick --filter '^scores/openblas' \
    --out "$tmp/blas" >"$tmp/log3" 2>&1 || { cat "$tmp/log3" >&2; exit 1; }
  OPENBLAS_CORETYPE=Haswell "$root/scripts/report.sh" --quick --filter '^scores/openblas' \
    --out "$tmp/blas-env" >"$tmp/log4" 2>&1 || { cat "$tmp/log4" >&2; exit 1; }
  python3 - "$root/scripts" "$tmp" <<'PY'
import json, os, sys
sys.path.insert(0, sys.argv[1])
import report
tmp = sys.argv[2]
ctx = json.load(open(os.path.join(tmp, 'blas', 'results.json')))['context']
core = ctx.get('openblas_core', '')
if core != 'Haswell' or 'detected Prescott' not in ctx.get('openblas_core_note', ''):
    sys.exit('test-report: generic core not replaced by Haswell: %s' % ctx)
md = open(os.path.join(tmp, 'blas', 'report.md')).read()
if 'ran on its Haswell kernels' not in md or 'OPENBLAS_CORETYPE=Haswell' not in md:
    sys.exit('test-report: report.md does not say which core OpenBLAS ran on')
ctx = json.load(open(os.path.join(tmp, 'blas-env', 'results.json')))['context']
if ctx.get('openblas_core') != 'Haswell' or 'set in the environment' not in ctx.get('openblas_core_note', ''):
    sys.exit('test-report: OPENBLAS_CORETYPE=Haswell from the environment not kept: %s' % ctx)
print('test-report: OpenBLAS core: Haswell when it looks generic on an AVX2 CPU; the environment\'s kept')
PY
fi
echo "test-report: ok"
