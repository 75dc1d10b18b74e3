#!/usr/bin/env python3
"""qkv benchmark report: runs qkv_bench group by group, then turns its
Google Benchmark JSON into a Markdown table and gnuplot PNGs.

    report.py run --bin BUILD/bench/qkv_bench --out DIR [--set quick|default|full]
                  [--filter REGEX] [--threads 1,2]
    report.py render DIR            redo table and plots from DIR/results.json
    report.py compare DIR_A DIR_B   side-by-side times of two report folders

scripts/report.sh is the front door (it also installs and builds). Standard
library only, so it runs wherever python3 does.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

# Name parts Google Benchmark appends on its own; they describe how a run
# was timed, not what was run, so two reports match without them.
GB_SUFFIXES = ('min_time:', 'repeats:', 'iterations:')
GB_FLAGS = ('real_time', 'manual_time', 'process_time')

TIME_UNIT_MS = {'ns': 1e-6, 'us': 1e-3, 'ms': 1.0, 's': 1e3}

PEERS = ('openblas',)   # columns after the ISAs


# ---------------------------------------------------------------------------
# Reading results
# ---------------------------------------------------------------------------

def strip_name(name):
    parts = [p for p in name.split('/')
             if not p.startswith(GB_SUFFIXES) and p not in GB_FLAGS]
    return '/'.join(parts)


def parse_name(name):
    """'attention/avx512/n:2048/d:64' -> ('attention', 'avx512', {'n': 2048, 'd': 64})."""
    parts = strip_name(name).split('/')
    params = {}
    for p in parts[2:]:
        k, _, v = p.partition(':')
        params[k] = int(v) if v.isdigit() else v
    return parts[0], parts[1] if len(parts) > 1 else '', params


class Result:
    def __init__(self, entry):
        self.name = strip_name(entry['run_name'])
        self.kind, self.impl, self.params = parse_name(self.name)
        self.error = entry.get('error_occurred', False)
        unit = TIME_UNIT_MS[entry.get('time_unit', 'ns')]
        self.ms = entry.get('real_time', float('nan')) * unit
        self.flops = entry.get('FLOPS')            # FLOP/s
        self.bytes_per_s = entry.get('bytes_per_second')
        self.items_per_s = entry.get('items_per_second')   # softmax: elements/s
        self.max_err = entry.get('max_err')        # qkv_fpmath rows: vs avx512 strict
        self.cold_ms = entry.get('cold_ms')        # decode_parts: from memory, and
        self.warm_ms = entry.get('warm_ms')        # with K/V in cache (ms)
        self.vs_base = entry.get('vs_base')        # paired rows (bench's time_in_turns): the
        self.base_ms = entry.get('base_ms')        # baseline's time over this one's, its ms
        self.reps = entry.get('repetitions', 1)
        self.cv = None                             # spread of the repetitions' times


# A cell whose repetitions' times spread more than this (coefficient of
# variation: standard deviation / mean) is marked NOISY_MARK: on a shared
# machine one repetition that met other work can move a median of three.
NOISY_CV = 0.10
NOISY_MARK = '‡'


def marked(r, cell):
    """cell, with NOISY_MARK when r's repetitions spread more than NOISY_CV."""
    if r is not None and not r.error and r.cv is not None and r.cv > NOISY_CV:
        return cell + ' ' + NOISY_MARK
    return cell


def load_results(doc):
    """One Result per benchmark: the median where repetitions were
    aggregated (robust to a disturbed repetition on a shared machine), else
    the single run."""
    chosen, cvs = {}, {}
    for e in doc.get('benchmarks', []):
        agg = e.get('aggregate_name')
        if agg == 'cv':   # real_time holds the fraction
            cvs[strip_name(e['run_name'])] = e.get('real_time')
        if agg not in (None, 'median'):
            continue
        r = Result(e)
        if agg == 'median' or r.name not in chosen:
            chosen[r.name] = r
        if e.get('error_occurred'):
            chosen[r.name] = r
    for name, cv in cvs.items():
        if name in chosen and isinstance(cv, (int, float)):
            chosen[name].cv = float(cv)
    return chosen


def speedup_over(r, twin, paired=True):
    """How many times as fast as its twin (the same call on f32 K/V, or on
    contiguous K/V) r ran: measured paired where the bench did (vs_base,
    the two taking turns in one benchmark) and twin is the baseline it was
    paired with (paired), else from the two benchmarks' times; None where
    neither is known."""
    if r.vs_base and paired:
        return r.vs_base
    if twin is not None and not twin.error and twin.ms > 0 and r.ms > 0:
        return twin.ms / r.ms
    return None


def ctx_float(ctx, key):
    try:
        return float(ctx[key])
    except (KeyError, ValueError, TypeError):
        return None


def impl_order(ctx, results):
    isas = [i for i in ctx.get('qkv_isas', 'scalar').split(',') if i]
    seen = {r.impl for r in results.values()}
    cols = [i for i in isas if i in seen]
    cols += [p for p in PEERS if p in seen]
    cols += sorted(seen - set(cols))
    return cols


BF16_PEAKS = ('peak_gflops_dpbf16', 'peak_gflops_tdpbf16')


def peak_for(ctx, impl):
    """Single-core GFLOP/s the implementation can at best reach: its own
    ISA's measured peak; a peer (OpenBLAS picks its own kernels) is held to
    the best ISA's."""
    p = ctx_float(ctx, 'peak_gflops_' + impl)
    if p is None and impl in PEERS:
        # FMA peaks only: peak_gflops_dpbf16 and _tdpbf16 are the bf16
        # rates of vdpbf16ps and AMX, not ceilings for an f32 peer.
        peaks = [ctx_float(ctx, k) for k in ctx
                 if k.startswith('peak_gflops_') and k not in BF16_PEAKS]
        peaks = [x for x in peaks if x]
        p = max(peaks) if peaks else None
    return p


# ---------------------------------------------------------------------------
# The Markdown table
# ---------------------------------------------------------------------------

def fmt_num(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return '?'
    if x >= 100:
        return '%.0f' % x
    if x >= 10:
        return '%.1f' % x
    if x >= 1:
        return '%.2f' % x
    return '%.3f' % x


def md_table(header, rows):
    out = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join(['---'] + ['--:'] * (len(header) - 1)) + '|']
    out += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(out)


def case_rows(results, kind, key_fn, filt=None):
    """Groups the results of one kind by case (everything but the impl)."""
    cases = {}
    for r in results.values():
        if r.kind != kind or (filt and not filt(r)):
            continue
        cases.setdefault(key_fn(r), {})[r.impl] = r
    return [(k, cases[k]) for k in sorted(cases)]


def flops_cell(r, base, peak, threads=1):
    if r is None:
        return '—'
    if r.error:
        return 'error'
    if not r.flops:
        return fmt_num(r.ms) + ' ms'
    g = r.flops / 1e9
    notes = []
    if base is not None and base is not r and base.flops and not base.error:
        notes.append('×%s' % fmt_num(r.flops / base.flops))
    if peak:
        notes.append('%.0f%%' % (100 * g / (peak * threads)))
    return fmt_num(g) + (' (' + ', '.join(notes) + ')' if notes else '')


def time_cell(r, base, bound_ms=None):
    if r is None:
        return '—'
    if r.error:
        return 'error'
    notes = []
    if base is not None and base is not r and not base.error and r.ms > 0:
        notes.append('×%s' % fmt_num(base.ms / r.ms))
    if bound_ms:
        notes.append('%.0f%% BW' % (100 * bound_ms / r.ms))
    return fmt_num(r.ms) + ' ms' + (' (' + ', '.join(notes) + ')' if notes else '')


# Bytes per value of each stored K/V dtype (Q8_0: 34 bytes per 32 values).
DTYPE_BYTES = {'f32': 4.0, 'f16': 2.0, 'bf16': 2.0, 'q8_0': 34 / 32, 'q4_0': 18 / 32}


def decode_kv_bytes(ctx, kv_len, dtype='f32'):
    m = re.search(r'kv_heads=(\d+) d=(\d+)', ctx.get('decode_shape', ''))
    kv_heads, d = (int(m.group(1)), int(m.group(2))) if m else (8, 128)
    return 2 * kv_heads * kv_len * d * DTYPE_BYTES.get(dtype, 4.0)


def render_markdown(doc, results):
    ctx = doc.get('context', {})
    cols = impl_order(ctx, results)
    base_impl = 'scalar'
    bw = ctx_float(ctx, 'read_gbs')
    lines = []
    cpu = ctx.get('cpu_model', '?')
    if ctx.get('cpu_family_model'):
        cpu += ' (family/model %s)' % ctx['cpu_family_model']
    lines.append('# qkv benchmark report')
    lines.append('')
    lines.append('- CPU: %s, %s CPUs usable, %s MHz nominal' %
                 (cpu, ctx.get('qkv_cpus', ctx.get('num_cpus', '?')), ctx.get('mhz_per_cpu', '?')))
    blas = ctx.get('openblas', 'not built')
    if ctx.get('openblas_core'):
        blas += ', ran on its %s kernels' % ctx['openblas_core']
    if ctx.get('openblas_core_note'):
        blas += ' (%s)' % ctx['openblas_core_note']
    elif ctx.get('openblas_coretype_env'):
        blas += ' (kernels forced by OPENBLAS_CORETYPE=%s)' % ctx['openblas_coretype_env']
    lines.append('- ISAs: %s (best: %s); OpenBLAS: %s' %
                 (ctx.get('qkv_isas', '?').replace(',', ', '), ctx.get('qkv_isa_best', '?'), blas))
    lines.append('- Run: %s, set `%s`, qkv %s, medians of %s repetition(s), %s s in all' %
                 (ctx.get('date', '?'), ctx.get('qkv_set', '?'), ctx.get('qkv_commit', '?'),
                  max([r.reps for r in results.values()] or [1]), ctx.get('report_seconds', '?')))
    load = ctx.get('load_avg')
    if load:
        lines.append('- Load average when the run started: %s (on %s CPUs; other work on the '
                     'machine slows runs down, thread scaling most)' %
                     (', '.join('%.2f' % x for x in load), ctx.get('num_cpus', '?')))
    limits = ['%s %s GFLOP/s' % (i, ctx['peak_gflops_' + i])
              for i in ctx.get('qkv_isas', '').split(',') if 'peak_gflops_' + i in ctx]
    more = ['%s GB/s on %s threads' % (ctx[k], k[len('read_gbs_t'):])
            for k in sorted(ctx, key=lambda k: int(k[len('read_gbs_t'):]) if k.startswith('read_gbs_t') else 0)
            if k.startswith('read_gbs_t')]
    lines.append('- Measured limits, one core: FMA peak %s; memory read %s GB/s (%s MiB buffer)%s' %
                 (', '.join(limits) or '?', ctx.get('read_gbs', '?'), ctx.get('read_buffer_mib', '?'),
                  '; ' + ', '.join(more) if more else ''))
    lines.append('')
    lines.append('Cells: value (×speed-up over scalar on the same case, %% of the measured '
                 'single-core peak of that column\'s ISA × threads; OpenBLAS is held to the best '
                 'ISA\'s peak). — = not run in this set (scalar stops at n = %s: it would take '
                 'minutes per case). Causal rows count only the visible half of the flops. '
                 '%s: the repetitions of that cell spread by more than %.0f%% (standard deviation '
                 'over mean of the times), as when other work shared the machine for one of them; '
                 'rerun it before trusting it.'
                 % (ctx.get('scalar_max_n', '?'), NOISY_MARK, 100 * NOISY_CV))

    def section(title, kind, key_fn, label_fn, cell_fn, filt=None, extra_col=None):
        rows = case_rows(results, kind, key_fn, filt)
        if not rows:
            return
        lines.append('')
        lines.append('## ' + title)
        lines.append('')
        # Only the columns that ran here (OpenBLAS has no softmax of its own).
        here = [c for c in cols if any(c in by_impl for _, by_impl in rows)]
        header = ['case'] + ([extra_col[0]] if extra_col else []) + here
        body = []
        for k, by_impl in rows:
            row = [label_fn(k)]
            if extra_col:
                row.append(extra_col[1](k))
            base = by_impl.get(base_impl)
            row += [marked(by_impl.get(c), cell_fn(by_impl.get(c), base, c, k)) for c in here]
            body.append(row)
        lines.append(md_table(header, body))

    def gflops(r, base, impl, k, threads=1):
        return flops_cell(r, base, peak_for(ctx, impl), threads)

    p = lambda r, name, default=0: r.params.get(name, default)

    section('Fused attention, prefill: %s heads, q_len = kv_len = n, 1 thread — GFLOP/s'
            % ctx.get('prefill_heads', '8'),
            'attention', lambda r: (p(r, 'd'), p(r, 'causal'), p(r, 'n')),
            lambda k: 'd=%d n=%d%s' % (k[0], k[2], ' causal' if k[1] else ''),
            gflops, filt=lambda r: p(r, 'threads', 1) == 1 and p(r, 'kv', 'f32') == 'f32'
            and 'fpmath' not in r.params and 'page' not in r.params)

    def decode_cell(r, base, impl, k):
        return time_cell(r, base, decode_kv_bytes(ctx, k) / (bw * 1e9) * 1e3 if bw else None)

    section('Decode: one token, %s, 1 thread — ms per call (%% BW = time to stream K+V '
            'at the measured bandwidth / time taken)' % ctx.get('decode_shape', ''),
            'decode', lambda r: p(r, 'kv_len'), lambda k: 'kv_len=%d' % k, decode_cell,
            filt=lambda r: p(r, 'threads', 1) == 1 and p(r, 'kv', 'f32') == 'f32' and 'page' not in r.params
            and 'q_heads' not in r.params and 'layout' not in r.params,
            extra_col=('K+V MiB, bound ms', lambda k: '%.0f, %s' % (
                decode_kv_bytes(ctx, k) / 2 ** 20,
                fmt_num(decode_kv_bytes(ctx, k) / (bw * 1e9) * 1e3) if bw else '?')))

    # Paged decode, and K/V with each key's heads side by side, against the
    # contiguous decode; the ragged batch in one call against separate
    # calls; merging partial results against bandwidth.
    laid = lambda r: r.kind == 'decode' and ('page' in r.params or 'layout' in r.params)
    if any(laid(r) for r in results.values()):
        def laid_cell(r, base, impl, k):
            if r is None or r.error:
                return '—' if r is None else 'error'
            tag = '/page:%d' % p(r, 'page') if 'page' in r.params else '/layout:' + p(r, 'layout')
            twin = results.get(r.name.replace(tag, ''))
            x = speedup_over(r, twin)
            notes = ['×%s of contiguous' % fmt_num(x)] if x else []
            runs = ctx_float(ctx, 'read_gbs_page_%d' % p(r, 'page'))
            if 'page' in r.params and runs and r.ms > 0:
                bound = decode_kv_bytes(ctx, p(r, 'kv_len'), p(r, 'kv', 'f32')) / (runs * 1e9) * 1e3
                notes.append('%.0f%% of shuffled-page BW' % (100 * bound / r.ms))
            return fmt_num(r.ms) + ' ms' + (' (%s)' % ', '.join(notes) if notes else '')
        runs_note = ', '.join('%s GB/s for pages of %d keys' % (ctx['read_gbs_page_%d' % ps], ps)
                              for ps in (16, 128) if 'read_gbs_page_%d' % ps in ctx)
        section('Paged decode (%s, K/V through a shuffled page table in vLLM\'s layout, '
                '[pages][kv_heads][page_size][dim]), and K/V contiguous as [kv_len][kv_heads][dim] '
                '(llama.cpp\'s cache), 1 thread — ms per call (× of contiguous: measured '
                'paired, each call taking turns with the same call on head-major contiguous K/V; '
                '%% of shuffled-page BW: K+V bytes at the bandwidth one core reads runs of a '
                'page\'s bytes in a shuffled order, 8 runs side by side as the decode sweep '
                'does%s / time taken)'
                % (ctx.get('decode_shape', ''), ': ' + runs_note if runs_note else ''),
                'decode', lambda r: (p(r, 'page', 1 << 30), p(r, 'kv', 'f32') != 'f32', p(r, 'kv', 'f32')),
                lambda k: ('page_size=%d' % k[0] if k[0] < 1 << 30 else '[kv_len][kv_heads][dim]') +
                (' %s K/V' % k[2] if k[1] else ''),
                laid_cell, filt=laid)

    def vs_twin_cell(r, impl, twin_name, what):
        """GFLOP/s (% of the FMA peak, × of the same call without what this
        row adds, named by twin_name(r), and the max error where measured)."""
        if r is None or r.error:
            return '—' if r is None else 'error'
        if not r.flops:
            return fmt_num(r.ms) + ' ms'
        twin = results.get(twin_name(r))
        peak = peak_for(ctx, impl)
        notes = ['%.0f%%' % (100 * r.flops / 1e9 / peak)] if peak else []
        x = speedup_over(r, twin)
        if x:
            notes.append('×%s of %s' % (fmt_num(x), what))
        if r.max_err is not None:
            notes.append('max error ' + ('failed' if r.max_err < 0 else '%.2g' % r.max_err))
        return fmt_num(r.flops / 1e9) + (' (%s)' % ', '.join(notes) if notes else '')

    section('Paged prefill (%s heads, causal, K/V through a shuffled page table in vLLM\'s layout), '
            '1 thread — GFLOP/s (%% of the FMA peak; × of the same call on contiguous K/V, '
            'measured paired, the two calls taking turns in one benchmark; '
            'the BF16 rows\' max error as in the qkv_fpmath section)' % ctx.get('prefill_heads', '8'),
            'attention', lambda r: (p(r, 'page'), p(r, 'd'), p(r, 'n'), p(r, 'fpmath', '')),
            lambda k: 'page_size=%d d=%d n=%d' % k[:3] + (', bf16 Q/K/V, BF16 mode' if k[3] else ''),
            lambda r, base, impl, k: vs_twin_cell(
                r, impl, lambda r: r.name.replace('/page:%d' % p(r, 'page'), ''), 'contiguous'),
            filt=lambda r: 'page' in r.params)

    section('Logit soft-cap, cap·tanh(s/cap) (%s heads, Gemma 2\'s cap), 1 thread — GFLOP/s '
            '(%% of the FMA peak; × of the same call without a cap, measured paired)'
            % ctx.get('prefill_heads', '8'),
            'softcap', lambda r: (p(r, 'cap'), p(r, 'd'), p(r, 'n'), p(r, 'causal')),
            lambda k: 'cap=%s d=%d n=%d%s' % (k[0], k[1], k[2], ' causal' if k[3] else ''),
            lambda r, base, impl, k: vs_twin_cell(
                r, impl, lambda r: r.name.replace('softcap/', 'attention/', 1).replace(
                    '/cap:%s' % p(r, 'cap'), ''), 'no cap'))

    def batch_cell(r, base, impl, k):
        if r is None or r.error:
            return '—' if r is None else 'error'
        # Paired (vs_base, base_ms: the separate calls timed in turn with
        # the one call), or, in reports of older commits, their own row.
        twin = results.get(r.name.replace('calls:one', 'calls:separate'))
        sep = r.base_ms or (twin.ms if twin and twin is not r and not twin.error else None)
        x = speedup_over(r, twin)
        note = ' (separate calls %s ms: ×%s)' % (fmt_num(sep), fmt_num(x)) if sep and x else ''
        return fmt_num(r.ms) + ' ms' + note
    section('A ragged batch of 16 sequences (1..4096 keys, half decoding one token, half '
            'prefilling, pages of 16) in one call against 16 separate calls, the two taking '
            'turns in one benchmark — ms',
            'batch', lambda r: p(r, 'threads', 1), lambda k: 'threads=%d' % k, batch_cell,
            filt=lambda r: p(r, 'calls') == 'one')

    def merge_cell(r, base, impl, k):
        if r is None or r.error or not r.bytes_per_s:
            return time_cell(r, base)
        g = r.bytes_per_s / 1e9
        return '%s GB/s%s' % (fmt_num(g), (' (%.0f%% of read BW)' % (100 * g / bw)) if bw else '')
    section('qkv_merge_states, two partial results from memory (12 bytes an element) — GB/s',
            'merge', lambda r: (p(r, 'rows'), p(r, 'dv')), lambda k: 'rows=%d dv=%d' % k, merge_cell)

    # Stored K/V dtypes against f32 on the same ISA and case.
    dtyped = [r for r in results.values()
              if r.kind in ('attention', 'decode') and p(r, 'threads', 1) == 1 and 'kv' in r.params]
    if dtyped:
        def f32_twin(r):
            name = r.name.replace('/kv:%s' % p(r, 'kv'), '').replace('/fpmath:bf16', '').replace('/q:bf16', '')
            return results.get(name)
        lines.append('')
        lines.append('## K/V stored as 16-bit or block-quantized, 1 thread — decode ms (×speed-up '
                     'over f32 K/V on the same ISA, its bound: f32 bytes / these bytes; % BW), '
                     'prefill GFLOP/s (×f32, % of peak); the plain rows\' × measured paired, each '
                     'call taking turns with the same call on f32 K/V in one benchmark; '
                     'fpmath=bf16 rows: QKV_FPMATH_BF16, × over f32 K/V in strict mode, with the max error against avx512 strict; q=bf16 rows: '
                     'Q stored as bf16 too, × over f32 Q, K, V')
        lines.append('')
        here = [c for c in cols if any(r.impl == c for r in dtyped)]
        rows = {}
        for r in dtyped:
            case = (r.kind, tuple(sorted((k, v) for k, v in r.params.items() if k not in ('threads',))))
            rows.setdefault(case, {})[r.impl] = r
        body = []
        for case in sorted(rows, key=lambda c: (c[0] != 'decode', str(c[1]))):
            kind, params = case
            prm = dict(params)
            dt = prm['kv']
            label = kind + ' ' + ' '.join('%s=%s' % (k, v) for k, v in params if k != 'kv') + ' kv=' + dt
            row = [label]
            for c in here:
                r = rows[case].get(c)
                if r is None or r.error:
                    row.append('—' if r is None else 'error')
                    continue
                twin = f32_twin(r)
                if kind == 'decode':
                    notes = []
                    # A paged or token-major row was paired with head-major
                    # contiguous K/V of its dtype, not with f32.
                    x = speedup_over(r, twin, paired='page' not in prm and 'layout' not in prm)
                    if x:
                        notes.append('×%s of ×%s' % (fmt_num(x), fmt_num(4.0 / DTYPE_BYTES.get(dt, 4.0))))
                    if bw:
                        bound = decode_kv_bytes(ctx, prm['kv_len'], dt) / (bw * 1e9) * 1e3
                        notes.append('%.0f%% BW' % (100 * bound / r.ms))
                    if ('fpmath' in prm or 'q' in prm) and r.max_err is not None:
                        notes.append('error failed' if r.max_err < 0 else 'error %.2g' % r.max_err)
                    row.append(marked(r, fmt_num(r.ms) + ' ms (' + ', '.join(notes) + ')'))
                else:
                    notes = []
                    x = speedup_over(r, twin)
                    if x:
                        notes.append('×%s' % fmt_num(x))
                    pk = peak_for(ctx, c)
                    if pk and r.flops:
                        notes.append('%.0f%%' % (100 * r.flops / 1e9 / pk))
                    row.append(marked(r, fmt_num((r.flops or 0) / 1e9) + ' (' + ', '.join(notes) + ')'))
            body.append(row)
        lines.append(md_table(['case'] + here, body))

    # Decode from memory taken apart: the same call with K and V left in
    # cache (its arithmetic), and what reading them from memory added, set
    # against the time the bytes take to stream at the probed bandwidth.
    parts = [r for r in results.values() if r.kind == 'decode_parts' and p(r, 'threads', 1) == 1]
    if parts and bw:
        lines.append('')
        lines.append('## Decode, where the time goes: from memory against the arithmetic alone, '
                     '%s, 1 thread — ms per call' % ctx.get('decode_shape', ''))
        lines.append('')
        lines.append('From memory: K and V read from memory (as in the decode rows). Arithmetic: '
                     'the same call with K and V left in cache, called right after it (medians of '
                     'the pairs). Memory: the difference, what reading K and V from memory added, '
                     'and that as a share of the stream time (K+V bytes at the measured read '
                     'bandwidth): 100% where the core streamed at that bandwidth and did its '
                     'arithmetic in between, less where it overlapped the two, more where it '
                     'read slower.')
        lines.append('')
        here = [c for c in cols if any(r.impl == c for r in parts)]
        body = []
        for kv_len in sorted({p(r, 'kv_len') for r in parts}):
            for dt in DTYPE_BYTES:
                row = ['kv_len=%d kv=%s' % (kv_len, dt)]
                for c in here:
                    r = next((r for r in parts
                              if r.impl == c and p(r, 'kv') == dt and p(r, 'kv_len') == kv_len), None)
                    if r is None:
                        row.append('—')
                        continue
                    if r.error or not r.cold_ms or not r.warm_ms:
                        row.append('error')
                        continue
                    stream = decode_kv_bytes(ctx, kv_len, dt) / (bw * 1e9) * 1e3
                    mem = r.cold_ms - r.warm_ms
                    row.append(marked(r, '%s: arithmetic %s + memory %s (%.0f%% of the %s stream)'
                                      % (fmt_num(r.cold_ms), fmt_num(r.warm_ms), fmt_num(mem),
                                         100 * mem / stream, fmt_num(stream))))
                body.append(row)
        lines.append(md_table(['case'] + here, body))

    # Q, K, V stored as bf16 in each qkv_fpmath mode: speed and error side
    # by side, against avx512 with f32 Q/K/V on the same case.
    fpm = [r for r in results.values()
           if r.kind == 'attention' and 'fpmath' in r.params and p(r, 'threads', 1) == 1
           and 'page' not in r.params]
    if fpm:
        lines.append('')
        lines.append('## Q, K, V stored as bf16, by qkv_fpmath mode: prefill, 1 thread')
        lines.append('')
        dp, fma = ctx_float(ctx, 'peak_gflops_dpbf16'), ctx_float(ctx, 'peak_gflops_avx512')
        if dp and fma:
            lines.append('vdpbf16ps peak %s GFLOP/s on one core, %s× the avx512 FMA peak (%s): '
                         'the most that bf16 tiles can gain here.' % (fmt_num(dp), fmt_num(dp / fma),
                                                                     fmt_num(fma)))
            lines.append('')
        tdp = ctx_float(ctx, 'peak_gflops_tdpbf16')
        if tdp and fma:
            lines.append('AMX tdpbf16ps peak %s GFLOP/s on one core, %s× the avx512 FMA peak: the '
                         'ceiling of amx\'s tiles; between them its online softmax runs on AVX-512.'
                         % (fmt_num(tdp), fmt_num(tdp / fma)))
            lines.append('')
        lines.append('GFLOP/s; ×: over avx512 with f32 Q, K, V on the same case; max error: the '
                     'largest |o − o_ref|, o_ref the same call on avx512 in strict mode (within 1e-5 '
                     'of the exact result). STRICT uses bf16 only where nothing is rounded; BF16 '
                     'may round Q, K, P, V (its bound is in qkv.h). Without bf16 tiles an ISA '
                     'runs BF16 as STRICT.')
        lines.append('')

        def f32_twin(r):
            parts = [x for x in r.name.split('/') if not x.startswith(('qkv:', 'fpmath:'))]
            parts[1] = 'avx512'
            return results.get('/'.join(parts))

        order = {c: i for i, c in enumerate(cols)}
        body = []
        for r in sorted(fpm, key=lambda r: (p(r, 'd'), p(r, 'n'), p(r, 'causal'),
                                            order.get(r.impl, 99), p(r, 'fpmath') != 'strict')):
            label = 'd=%d n=%d%s' % (p(r, 'd'), p(r, 'n'), ' causal' if p(r, 'causal') else '')
            if r.error:
                body.append([label, r.impl, p(r, 'fpmath'), 'error', '', ''])
                continue
            twin = f32_twin(r)
            ratio = '×' + fmt_num(r.flops / twin.flops) if twin and twin.flops and r.flops else '—'
            err = '—' if r.max_err is None else 'failed' if r.max_err < 0 else '%.2g' % r.max_err
            body.append([label, r.impl, p(r, 'fpmath'), marked(r, fmt_num((r.flops or 0) / 1e9)), ratio,
                         err])
        lines.append(md_table(['case', 'ISA', 'fpmath', 'GFLOP/s', '× avx512 f32', 'max error'], body))

    # Thread scaling: every fused case measured at more than one thread count.
    multi = {}
    for r in results.values():
        if r.kind in ('attention', 'decode'):
            case = (r.kind,) + tuple(sorted((k, v) for k, v in r.params.items() if k != 'threads'))
            multi.setdefault(case, set()).add(p(r, 'threads', 1))
    scaled = {c for c, ts in multi.items() if len(ts) > 1}
    if scaled:
        def case_of(r):
            return (r.kind,) + tuple(sorted((k, v) for k, v in r.params.items() if k != 'threads'))

        def key(r):
            return (case_of(r), p(r, 'threads', 1))

        rows = {}
        for r in results.values():
            if r.kind in ('attention', 'decode') and case_of(r) in scaled:
                rows.setdefault(key(r), {})[r.impl] = r
        lines.append('')
        lines.append('## Thread scaling — GFLOP/s (×speed-up over 1 thread of the same column, '
                     '% of threads × single-core peak; decode: % BW, the time K and V take to '
                     'stream at the bandwidth measured with that many threads / time taken)')
        lines.append('')
        body = []
        for k in sorted(rows):
            case, t = k
            label = case[0] + ' ' + ' '.join('%s=%s' % kv for kv in case[1:]) + ' threads=%d' % t
            one = rows.get((case, 1), {})
            row = [label]
            for c in cols:
                r = rows[k].get(c)
                if r is None:
                    row.append('—')
                elif r.error:
                    row.append('error')
                else:
                    b = one.get(c)
                    notes = []
                    if b is not None and b is not r and b.flops and r.flops:
                        notes.append('×%s' % fmt_num(r.flops / b.flops))
                    pk = peak_for(ctx, c)
                    if pk and r.flops:
                        notes.append('%.0f%%' % (100 * r.flops / 1e9 / (pk * t)))
                    # t threads read at least what one does: a t-thread probe
                    # that caught other tenants' traffic must not lower the bound.
                    tbw = max([x for x in (ctx_float(ctx, 'read_gbs'),
                                           ctx_float(ctx, 'read_gbs_t%d' % t)) if x] or [0])
                    if case[0] == 'decode' and tbw and r.ms > 0:
                        kv = dict(case[1:]).get('kv_len', 0)
                        dt = dict(case[1:]).get('kv', 'f32')
                        notes.append('%.0f%% BW' % (100 * decode_kv_bytes(ctx, kv, dt) / (tbw * 1e9) * 1e3 / r.ms))
                    row.append(marked(r, fmt_num(r.flops / 1e9) +
                                      (' (' + ', '.join(notes) + ')' if notes else '')))
            body.append(row)
        lines.append(md_table(['case'] + cols, body))

    for kind, title in (('scores', 'Stage 1, scores S = scale·Q·Kᵀ (one head) — GFLOP/s'),
                        ('weighted_sum', 'Stage 3, weighted sum O = P·V (one head) — GFLOP/s')):
        section(title, kind, lambda r: (p(r, 'd'), p(r, 'n')),
                lambda k: 'm=n=%d d=%d' % (k[1], k[0]), gflops)
    def elements_cell(r, base, impl, k):
        if r is None or r.error or not r.items_per_s:
            return time_cell(r, base)
        notes = [fmt_num(r.ms) + ' ms']
        if base is not None and base is not r and not base.error and base.items_per_s:
            notes.append('×%s' % fmt_num(r.items_per_s / base.items_per_s))
        return '%s (%s)' % (fmt_num(r.items_per_s / 1e9), ', '.join(notes))

    section('Stage 2, softmax in place (one head, m × n) — G elements/s (ms per call, '
            '×speed-up over scalar)', 'softmax', lambda r: p(r, 'n'), lambda k: 'm=n=%d' % k,
            elements_cell)
    lines.append('')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def gnuplot_terminal():
    """pngcairo draws anti-aliased text; the libgd png terminal is the
    fallback some minimal gnuplot builds have."""
    try:
        out = subprocess.run(['gnuplot', '-e', 'set terminal'], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    listing = out.stdout + out.stderr
    if re.search(r'^\s*pngcairo\b', listing, re.M):
        return 'pngcairo size 1000,640 noenhanced font "Sans,11"'
    if re.search(r'^\s*png\b', listing, re.M):
        return 'png size 1000,640 noenhanced'
    return None


def gp_quote(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


class Plot:
    """One PNG: a gnuplot script plus its data files under plots/."""

    def __init__(self, out_dir, name, title, xlabel, ylabel, logx=True, logy=True):
        self.out_dir, self.name = out_dir, name
        self.head = [
            'set title ' + gp_quote(title),
            'set xlabel ' + gp_quote(xlabel),
            'set ylabel ' + gp_quote(ylabel),
            'set grid',
            'set key outside right top',
        ]
        if logx:
            self.head.append('set logscale x 2')
        if logy:
            self.head.append('set logscale y')
        self.series = []

    def add(self, label, points, style):
        if not points:
            return
        fname = '%s_%d.dat' % (self.name, len(self.series))
        with open(os.path.join(self.out_dir, 'plots', fname), 'w') as f:
            for x, y in sorted(points):
                f.write('%r %r\n' % (x, y))
        self.series.append('%s using 1:2 with %s title %s' % (gp_quote(fname), style, gp_quote(label)))

    def write(self, terminal):
        if not self.series:
            return None
        script = ['set terminal ' + terminal,
                  'set output ' + gp_quote(os.path.join('..', self.name + '.png'))]
        script += self.head
        script.append('plot ' + ', \\\n     '.join(self.series))
        path = os.path.join(self.out_dir, 'plots', self.name + '.gp')
        with open(path, 'w') as f:
            f.write('\n'.join(script) + '\n')
        return path


# Colour per column, stable across plots; the peak line of an ISA takes the
# same colour as its measurements.
COLOURS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d']


def render_plots(doc, results, out_dir):
    ctx = doc.get('context', {})
    terminal = gnuplot_terminal()
    if terminal is None:
        print('report: gnuplot with a png terminal not found; no plots', file=sys.stderr)
        return []
    os.makedirs(os.path.join(out_dir, 'plots'), exist_ok=True)
    cols = impl_order(ctx, results)
    colour = {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(cols)}
    cpu = ctx.get('cpu_model', '')
    p = lambda r, name, default=0: r.params.get(name, default)
    plots = []

    # GFLOP/s vs n, one plot per head dim; the peak of each ISA as a line.
    dims = sorted({p(r, 'd') for r in results.values() if r.kind == 'attention'})
    for d in dims:
        pl = Plot(out_dir, 'prefill_d%d' % d,
                  'Prefill attention, d=%d, %s heads, 1 thread — %s' % (d, ctx.get('prefill_heads', 8), cpu),
                  'sequence length n (q_len = kv_len), log scale', 'GFLOP/s (useful flops, log scale)')
        xs = sorted({p(r, 'n') for r in results.values() if r.kind == 'attention' and p(r, 'd') == d})
        for c in cols:
            for causal in (0, 1):
                pts = [(p(r, 'n'), r.flops / 1e9) for r in results.values()
                       if r.kind == 'attention' and r.impl == c and p(r, 'd') == d
                       and p(r, 'causal') == causal and p(r, 'threads', 1) == 1
                       and 'fpmath' not in r.params and 'page' not in r.params
                       and r.flops and not r.error]
                pl.add('%s%s' % (c, ' causal' if causal else ''), pts,
                       'linespoints lw 2 pt 7 dt %d lc rgb "%s"' % (2 if causal else 1, colour[c]))
            pk = ctx_float(ctx, 'peak_gflops_' + c)
            if pk and xs:
                pl.add('%s peak (measured)' % c, [(xs[0], pk), (xs[-1], pk)],
                       'lines lw 1.5 dt 4 lc rgb "%s"' % colour[c])
        plots.append(pl)

    # Decode time vs kv_len with the bandwidth bound.
    dec = [r for r in results.values() if r.kind == 'decode' and p(r, 'threads', 1) == 1 and not r.error
           and p(r, 'kv', 'f32') == 'f32' and 'page' not in r.params and 'q_heads' not in r.params
           and 'layout' not in r.params]
    if dec:
        pl = Plot(out_dir, 'decode', 'Decode, one token (%s), 1 thread — %s' % (ctx.get('decode_shape', ''), cpu),
                  'kv_len (keys in the cache), log scale', 'time per call, ms (log scale)')
        for c in cols:
            pl.add(c, [(p(r, 'kv_len'), r.ms) for r in dec if r.impl == c],
                   'linespoints lw 2 pt 7 lc rgb "%s"' % colour[c])
        bw = ctx_float(ctx, 'read_gbs')
        if bw:
            kvs = sorted({p(r, 'kv_len') for r in dec})
            pl.add('bound: K+V bytes / %.1f GB/s (1 core)' % bw,
                   [(kv, decode_kv_bytes(ctx, kv) / (bw * 1e9) * 1e3) for kv in kvs],
                   'lines lw 2 dt 2 lc rgb "black"')
        plots.append(pl)

    # Thread scaling: speed-up over 1 thread for every case with several counts.
    fused = [r for r in results.values() if r.kind in ('attention', 'decode') and not r.error]
    groups = {}
    for r in fused:
        case = (r.kind, r.impl) + tuple(sorted((k, v) for k, v in r.params.items() if k != 'threads'))
        groups.setdefault(case, {})[p(r, 'threads', 1)] = r
    groups = {c: g for c, g in groups.items() if len(g) > 1 and 1 in g}
    if groups:
        pl = Plot(out_dir, 'threads', 'Thread scaling of the fused path — %s, %s CPUs' % (cpu, ctx.get('qkv_cpus', '?')),
                  'threads', 'speed-up over 1 thread (same implementation)', logx=False, logy=False)
        tmax = max(max(g) for g in groups.values())
        pl.head += ['set xrange [0.8:%g]' % (tmax + 0.2), 'set yrange [0:%g]' % (tmax + 0.5),
                    'set xtics 1']
        for i, (case, g) in enumerate(sorted(groups.items())):
            label = '%s %s %s' % (case[1], case[0], ' '.join('%s=%s' % kv for kv in case[2:]))
            pts = [(t, g[1].ms / r.ms) for t, r in g.items()]
            pl.add(label, pts, 'linespoints lw 2 pt %d dt %d lc rgb "%s"' % (
                5 + i % 4, 1 if case[0] == 'attention' else 2, colour[case[1]]))
        pl.add('ideal', [(1, 1), (tmax, tmax)], 'lines lw 1 dt 3 lc rgb "gray40"')
        plots.append(pl)

    made = []
    for pl in plots:
        script = pl.write(terminal)
        if not script:
            continue
        run = subprocess.run(['gnuplot', os.path.basename(script)], cwd=os.path.join(out_dir, 'plots'),
                             capture_output=True, text=True)
        if run.returncode != 0:
            print('report: gnuplot failed on %s:\n%s' % (script, run.stderr), file=sys.stderr)
        else:
            made.append(os.path.join(out_dir, pl.name + '.png'))
    return made


def render(out_dir):
    with open(os.path.join(out_dir, 'results.json')) as f:
        doc = json.load(f)
    results = load_results(doc)
    pngs = render_plots(doc, results, out_dir)
    md = render_markdown(doc, results)
    # The plots under the tables, so that report.md viewed in a browser or
    # a forge shows everything; the terminal copy leaves them out.
    figs = ['![%s](%s)' % (os.path.basename(p)[:-4], os.path.basename(p)) for p in pngs]
    with open(os.path.join(out_dir, 'report.md'), 'w') as f:
        f.write(md + ('\n## Plots\n\n' + '\n\n'.join(figs) + '\n' if figs else ''))
    return md, pngs


# ---------------------------------------------------------------------------
# Running the benchmark
# ---------------------------------------------------------------------------

def list_benchmarks(binary, base_args, regex):
    args = [binary] + base_args + ['--benchmark_list_tests=true']
    if regex:
        args.append('--benchmark_filter=' + regex)
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit('report: %s failed:\n%s' % (' '.join(args), out.stderr))
    return [l.strip() for l in out.stdout.splitlines() if l.strip()]


def git_commit(repo):
    try:
        rev = subprocess.run(['git', '-C', repo, 'rev-parse', '--short', 'HEAD'],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', repo, 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True).stdout.strip()
        return rev + ('-dirty' if dirty else '') if rev else 'unknown'
    except OSError:
        return 'unknown'


# ---------------------------------------------------------------------------
# OpenBLAS's kernels
# ---------------------------------------------------------------------------

# OpenBLAS picks its kernels by CPUID when it loads; a CPU its release does
# not know (OpenBLAS 0.3.21 on a Xeon of family 6 model 207) falls back to a
# generic core such as Prescott (SSE3), which makes the peer a straw man at
# a sixth of its speed. Cores with AVX2 kernels or better:
OPENBLAS_AVX2_CORES = {'haswell', 'zen', 'skylakex', 'cooperlake', 'sapphirerapids'}


def pick_openblas_core(auto_core, cpu_flags, ships):
    """The OPENBLAS_CORETYPE to run the peer with, or None to keep OpenBLAS's
    own choice: only when it chose a core without AVX2 kernels on a CPU
    with AVX2 (or AVX-512), the best core for this CPU that this OpenBLAS
    ships (ships(name) says whether it does)."""
    flags = set(cpu_flags)
    if not auto_core or auto_core.lower() in OPENBLAS_AVX2_CORES or not {'avx2', 'fma'} <= flags:
        return None
    want = []
    if {'avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512cd'} <= flags:
        if 'avx512_bf16' in flags:
            want.append('Cooperlake')
        want.append('SkylakeX')
    want.append('Haswell')
    return next((core for core in want if ships(core)), None)


def openblas_library(binary):
    """The libopenblas the benchmark loads (from ldd), or None."""
    try:
        out = subprocess.run(['ldd', binary], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'libopenblas[^ ]*\s*=>\s*(\S+)', out)
    return m.group(1) if m else None


def openblas_corename(lib, coretype=None):
    """The core OpenBLAS runs on when loaded with OPENBLAS_CORETYPE=coretype
    (None: unset), asked in a separate process since it decides at load."""
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_CORETYPE'}
    if coretype:
        env['OPENBLAS_CORETYPE'] = coretype
    code = ('import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); '
            'l.openblas_get_corename.restype = ctypes.c_char_p; '
            'print(l.openblas_get_corename().decode())')
    try:
        r = subprocess.run([sys.executable, '-c', code, lib], env=env, capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return line.split(':', 1)[1].split()
    except OSError:
        pass
    return []


def openblas_environment(binary):
    """(environment for the benchmark, a note for the report). Keeps an
    OPENBLAS_CORETYPE the user set; otherwise sets one only when OpenBLAS
    would pick a generic core on this CPU. For tests on any machine,
    QKV_REPORT_OPENBLAS_AUTO pretends OpenBLAS detected that core and
    QKV_REPORT_CPU_FLAGS that the CPU has those /proc/cpuinfo flags."""
    env = dict(os.environ)
    if env.get('OPENBLAS_CORETYPE'):
        return env, 'OPENBLAS_CORETYPE=%s set in the environment' % env['OPENBLAS_CORETYPE']
    lib = openblas_library(binary)
    if not lib:
        return env, ''
    auto = env.pop('QKV_REPORT_OPENBLAS_AUTO', None) or openblas_corename(lib)
    flags = env.pop('QKV_REPORT_CPU_FLAGS', None)
    flags = flags.split() if flags is not None else cpu_flags()
    core = pick_openblas_core(auto, flags,
                              lambda c: (openblas_corename(lib, c) or '').lower() == c.lower())
    if not core:
        return env, ''
    env['OPENBLAS_CORETYPE'] = core
    note = ('OpenBLAS detected %s, a generic core on this CPU: the report set OPENBLAS_CORETYPE=%s'
            % (auto, core))
    print('report: ' + note, flush=True)
    return env, note


def run(args):
    out_dir = args.out
    raw_dir = os.path.join(out_dir, 'raw')
    # Only what this script writes is removed, so --out at an existing
    # folder cannot lose anything else in it.
    for sub in ('raw', 'plots'):
        shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)
    os.makedirs(raw_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith('.png') or f in ('report.md', 'results.json'):
            os.remove(os.path.join(out_dir, f))

    base_args = ['--qkv_set=' + args.set]
    if args.threads:
        base_args.append('--qkv_threads=' + args.threads)
    names = list_benchmarks(args.bin, base_args, args.filter)
    if not names:
        sys.exit('report: no benchmark matches the filter %r' % args.filter)

    # One process per kind with every implementation in it, its repetitions
    # in a random interleaved order (Google Benchmark's random interleaving):
    # a slow minute on a shared machine then falls on all columns alike,
    # where one process per ISA had put it on one ISA's whole column (the
    # same avx512 f32 kernels once read 126 and 189 GFLOP/s in the avx512
    # and avx512bf16 columns of one report). OpenBLAS's multi-threaded rows
    # run after, on their own: its idle workers spin for a while after a
    # call and would take a core from whatever ran next.
    by_group = {}     # insertion-ordered: registration order of first members
    for n in names:
        kind, impl, params = parse_name(n)
        alone = impl == 'openblas' and params.get('threads', 1) > 1
        by_group.setdefault((kind, 'openblas threaded' if alone else 'all'), []).append(n)
    groups = sorted(by_group.items(), key=lambda g: g[0][1] == 'openblas threaded')

    bench_env, blas_note = openblas_environment(args.bin)
    start = time.time()
    docs = []
    done, total = 0, len(names)
    for i, ((kind, part), members) in enumerate(groups):
        impls = list(dict.fromkeys(parse_name(m)[1] for m in members))
        label = kind + (' (%s, interleaved)' % ', '.join(impls) if part == 'all' else ' ' + part)
        span = '%d' % (done + 1) if len(members) == 1 else '%d-%d' % (done + 1, done + len(members))
        print('[%d/%d] %s: benchmark%s %s of %d  (%.0f s so far)' % (
            i + 1, len(groups), label, '' if len(members) == 1 else 's', span, total,
            time.time() - start), flush=True)
        path = os.path.join(raw_dir, '%02d_%s_%s.json' % (i + 1, kind, part.replace(' ', '_')))
        # The exact names, anchored: a group never runs a benchmark of
        # another group, whatever the user's filter matched.
        regex = '^(' + '|'.join(re.escape(m).replace('\\/', '/').replace('\\:', ':') for m in members) + ')$'
        cmd = [args.bin] + base_args + [
            '--benchmark_filter=' + regex, '--benchmark_enable_random_interleaving=true',
            '--benchmark_out=' + path, '--benchmark_out_format=json',
            # The machine limits are measured once, with the first group.
            '--qkv_probe=' + ('1' if i == 0 else '0')]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                env=bench_env)
        for line in proc.stdout:
            line = line.rstrip()
            # Echo the result lines (medians when aggregated) and anything
            # unusual; the banner and the mean/stddev/cv lines are noise here.
            if line.startswith('probe:') or 'ERROR' in line or 'error' in line.lower():
                print('    ' + line, flush=True)
            elif line.startswith(kind + '/') and not re.search(r'_(mean|stddev|cv)\s', line):
                done = min(done + 1, total)
                print('  %3d/%d %s' % (done, total, re.sub(r'/min_time:[0-9.]+|/repeats:\d+|/real_time|_median',
                                                         '', line)), flush=True)
        done = max(done, sum(len(m) for _, m in groups[:i + 1]))   # errors print no result line
        if proc.wait() != 0:
            sys.exit('report: %s exited with %d' % (args.bin, proc.returncode))
        with open(path) as f:
            docs.append(json.load(f))

    merged = {'context': dict(docs[0].get('context', {})), 'benchmarks': []}
    for d in docs:
        merged['benchmarks'] += d.get('benchmarks', [])
    merged['context']['qkv_commit'] = git_commit(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    merged['context']['report_seconds'] = '%.0f' % (time.time() - start)
    if blas_note:
        merged['context']['openblas_core_note'] = blas_note
    with open(os.path.join(out_dir, 'results.json'), 'w') as f:
        json.dump(merged, f, indent=1)
        f.write('\n')

    md, pngs = render(out_dir)
    print()
    print(md)
    print('report: %s/ — results.json (Google Benchmark JSON, all groups), raw/ (per group), '
          'report.md, %s; %.0f s' % (out_dir.rstrip('/'), ', '.join(os.path.basename(p) for p in pngs) or 'no plots',
                                     time.time() - start))


# ---------------------------------------------------------------------------
# Comparing two report folders
# ---------------------------------------------------------------------------

def compare(a_dir, b_dir):
    docs = []
    for d in (a_dir, b_dir):
        try:
            with open(os.path.join(d, 'results.json')) as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as e:
            sys.exit('report: cannot read %s/results.json: %s' % (d, e))
    ra, rb = load_results(docs[0]), load_results(docs[1])
    for tag, d, doc in (('A', a_dir, docs[0]), ('B', b_dir, docs[1])):
        c = doc.get('context', {})
        print('%s: %s — %s, %s, commit %s, set %s' % (tag, d, c.get('cpu_model', '?'), c.get('date', '?'),
                                                      c.get('qkv_commit', '?'), c.get('qkv_set', '?')))
    print()
    # The limits each run probed, B's over A's: on a shared host they move
    # from one run to the next (another tenant, the clock), and the rows
    # move with them whatever the code did.
    ca, cb = docs[0].get('context', {}), docs[1].get('context', {})
    probes = []
    for k in sorted(set(ca) & set(cb)):
        if k.startswith('peak_gflops_') or k.startswith('read_gbs'):
            x, y = ctx_float(ca, k), ctx_float(cb, k)
            if x and y:
                probes.append('%s %s → %s (×%.2f)' % (k, ca[k], cb[k], y / x))
    if probes:
        print('probes, A → B (×: B\'s over A\'s; where they moved, so did the host): ' +
              ', '.join(probes))
        print()
    # Only what both ran: a quick and a default folder share few names, and
    # rows of dashes would hide the ones that matter.
    natural = lambda n: [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', n)]
    names = sorted(set(ra) & set(rb), key=natural)
    rows, ratios = [], []
    for n in names:
        a, b = ra[n], rb[n]
        cell = lambda r: 'error' if r.error else fmt_num(r.ms)
        ratio = '—'
        if not a.error and not b.error and b.ms > 0:
            ratios.append(a.ms / b.ms)
            ratio = '%.2f' % (a.ms / b.ms)
        rows.append([n, cell(a), cell(b), ratio])
    print(md_table(['benchmark', 'A ms', 'B ms', 'A/B (>1: B faster)'], rows))
    only_a, only_b = len(set(ra) - set(rb)), len(set(rb) - set(ra))
    if only_a or only_b:
        print()
        print('not compared: %d benchmarks only in A, %d only in B' % (only_a, only_b))
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print()
        print('geometric mean of A/B over %d common benchmarks: %.3f' % (len(ratios), geo))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run')
    r.add_argument('--bin', required=True)
    r.add_argument('--out', default='report')
    r.add_argument('--set', default='default', choices=['quick', 'default', 'full'])
    r.add_argument('--filter', default='')
    r.add_argument('--threads', default='')
    g = sub.add_parser('render')
    g.add_argument('dir')
    c = sub.add_parser('compare')
    c.add_argument('a')
    c.add_argument('b')
    args = ap.parse_args()
    if args.cmd == 'run':
        run(args)
    elif args.cmd == 'render':
        md, _ = render(args.dir)
        print(md)
    else:
        compare(args.a, args.b)


if __name__ == '__main__':
    main()
