"""The Python binding against a float64 numpy oracle, on every ISA this
machine runs, with the seed printed so that a failure can be reproduced
(QKV_TEST_SEED=<seed> to rerun one).

Tolerance: the header's accuracy contract, 1e-5 absolute against a double
reference for inputs in [-1, 1] and |V| <= 1; float16 inputs are compared
against the reference computed on the same rounded values.
"""
import ctypes
import math
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import qkv

TOL = 1e-5
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SEED = int(os.environ.get("QKV_TEST_SEED", np.random.SeedSequence().entropy % 2**32))
print("test_qkv: QKV_TEST_SEED=%d" % SEED)


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def oracle(q, k, v, scale, causal=False, mask=None, window=0, softcap=0.0, slopes=None,
           sinks=None):
    """[b, hq, lq, d] x [b, hkv, lk, d] x [b, hkv, lk, dv] in float64, with the
    header's definitions; returns (o, lse)."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b, hq, lq, _ = q.shape
    hkv, lk = k.shape[1], k.shape[2]
    g = hq // hkv
    k = np.repeat(k, g, axis=1)
    v = np.repeat(v, g, axis=1)
    s = scale * np.einsum("bhid,bhjd->bhij", q, k)
    if softcap:
        s = softcap * np.tanh(s / softcap)
    pos = np.arange(lq)[:, None] + lk - lq
    j = np.arange(lk)[None, :]
    if slopes is not None:
        s = s + np.asarray(slopes, np.float64)[None, :, None, None] * (j - pos)
    if mask is not None:
        s = s + np.asarray(mask, np.float64)
    hide = np.zeros((lq, lk), bool)
    if causal:
        hide |= j > pos
    if window:
        hide |= j <= pos - window
    s = np.where(hide, -np.inf, s)
    terms = [s]
    if sinks is not None:
        terms.append(np.broadcast_to(np.asarray(sinks, np.float64)[None, :, None, None],
                                     (b, hq, lq, 1)))
    full = np.concatenate(terms, axis=-1)
    m = full.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(full - m)
    total = e.sum(axis=-1, keepdims=True)
    p = np.divide(e[..., :lk], total, out=np.zeros_like(e[..., :lk]), where=total > 0)
    o = np.einsum("bhij,bhjd->bhid", p, v)
    with np.errstate(divide="ignore"):
        lse = (m + np.log(total))[..., 0]
    return o, lse


def uniform(rng, *shape, dtype=np.float32):
    return rng.uniform(-1, 1, shape).astype(dtype)


@pytest.mark.parametrize("isa", qkv.isas())
@pytest.mark.parametrize("shape", [
    # batch, q_heads, kv_heads, q_len, kv_len, dim, v_dim
    (1, 1, 1, 1, 1, 1, 1),
    (1, 32, 8, 1, 300, 64, 64),        # GQA decode
    (2, 4, 2, 7, 33, 24, 8),           # dims that fit no vector width
    (1, 3, 1, 70, 70, 16, 16),         # MQA prefill
])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_oracle(rng, isa, shape, causal):
    b, hq, hkv, lq, lk, d, dv = shape
    q, k, v = uniform(rng, b, hq, lq, d), uniform(rng, b, hkv, lk, d), uniform(rng, b, hkv, lk, dv)
    o, lse = qkv.attention(q, k, v, causal=causal, isa=isa, return_lse=True)
    ref, ref_lse = oracle(q, k, v, 1 / math.sqrt(d), causal=causal)
    assert o.shape == (b, hq, lq, dv) and o.dtype == np.float32
    np.testing.assert_allclose(o, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(lse, ref_lse, rtol=0, atol=TOL * max(1.0, np.abs(ref_lse).max()))


@pytest.mark.parametrize("isa", qkv.isas())
def test_modifiers(rng, isa):
    """window, soft-cap, ALiBi, sinks, an additive mask broadcast over batch
    and heads, and a boolean mask."""
    b, hq, hkv, lq, lk, d = 2, 4, 2, 5, 40, 16
    q, k, v = uniform(rng, b, hq, lq, d), uniform(rng, b, hkv, lk, d), uniform(rng, b, hkv, lk, d)
    slopes, sinks = uniform(rng, hq), uniform(rng, hq)
    o = qkv.attention(q, k, v, scale=0.3, causal=True, window=9, softcap=2.0, alibi_slopes=slopes,
                      sinks=sinks, isa=isa)
    ref, _ = oracle(q, k, v, 0.3, causal=True, window=9, softcap=2.0, slopes=slopes, sinks=sinks)
    np.testing.assert_allclose(o, ref, rtol=0, atol=TOL)

    mask = uniform(rng, lq, lk)                   # broadcast over batch and heads
    mask[1, 3:] = -np.inf
    o = qkv.attention(q, k, v, mask=mask, isa=isa)
    ref, _ = oracle(q, k, v, 0.25, mask=mask)
    np.testing.assert_allclose(o, ref, rtol=0, atol=TOL)

    keep = rng.uniform(size=(b, 1, lq, lk)) < 0.7   # boolean, per batch, broadcast over heads
    o = qkv.attention(q, k, v, mask=keep, isa=isa)
    ref, _ = oracle(q, k, v, 0.25, mask=np.where(keep, 0.0, -np.inf))
    np.testing.assert_allclose(o, ref, rtol=0, atol=TOL)


def test_layouts_and_dims(rng):
    """[batch, len, heads, dim] read in place gives the same as the
    transposed copy; 3-d and 2-d arrays drop the leading axes."""
    q, k, v = uniform(rng, 2, 6, 4, 8), uniform(rng, 2, 9, 2, 8), uniform(rng, 2, 9, 2, 8)
    o = qkv.attention(q, k, v, layout="bshd", causal=True)
    t = qkv.attention(*(x.transpose(0, 2, 1, 3).copy() for x in (q, k, v)), causal=True)
    assert o.shape == (2, 6, 4, 8)
    np.testing.assert_array_equal(o, t.transpose(0, 2, 1, 3))
    o3 = qkv.attention(q[0].transpose(1, 0, 2), k[0].transpose(1, 0, 2), v[0].transpose(1, 0, 2))
    assert o3.shape == (4, 6, 8)
    o2, lse2 = qkv.attention(q[0, :, 0], k[0, :, 0], v[0, :, 0], return_lse=True)
    ref, ref_lse = oracle(q[None, None, 0, :, 0], k[None, None, 0, :, 0], v[None, None, 0, :, 0],
                          1 / math.sqrt(8))
    assert o2.shape == (6, 8) and lse2.shape == (6,)
    np.testing.assert_allclose(o2, ref[0, 0], rtol=0, atol=TOL)


def test_float16_and_other_dtypes(rng):
    q, k, v = (uniform(rng, 1, 4, 3, 16, dtype=np.float16) for _ in range(3))
    o = qkv.attention(q, k, v)
    ref, _ = oracle(q.astype(np.float64), k, v, 0.25)
    np.testing.assert_allclose(o, ref, rtol=0, atol=TOL)
    # ints and float64 are converted to float32
    o = qkv.attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    np.testing.assert_allclose(o, ref, rtol=0, atol=TOL)
    with pytest.raises(TypeError):
        qkv.attention(q.astype(np.complex64), k, v)


def test_threads_are_bit_identical(rng):
    """With a pool the split depends on the shapes and strides only."""
    q, k, v = uniform(rng, 1, 8, 1, 64), uniform(rng, 1, 2, 3000, 64), uniform(rng, 1, 2, 3000, 64)
    a = qkv.attention(q, k, v, threads=2)
    b = qkv.attention(q, k, v, threads=3)
    np.testing.assert_array_equal(a, b)
    ref, _ = oracle(q, k, v, 1 / 8)
    np.testing.assert_allclose(a, ref, rtol=0, atol=TOL)


def test_three_stages(rng):
    q, k, v = uniform(rng, 5, 12), uniform(rng, 7, 12), uniform(rng, 7, 3)
    s = qkv.scores(q, k, scale=0.5)
    np.testing.assert_allclose(s, 0.5 * q.astype(np.float64) @ k.T, rtol=0, atol=TOL)
    p = qkv.softmax(s)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=0, atol=TOL)
    np.testing.assert_allclose(qkv.weighted_sum(p, v), p.astype(np.float64) @ v, rtol=0, atol=TOL)
    # a broadcast (stride-0) row block is copied, not handed over as ld 0
    np.testing.assert_allclose(qkv.scores(np.broadcast_to(q[0], (3, 12)), k)[2],
                               q[0].astype(np.float64) @ k.T, rtol=0, atol=TOL)


def test_errors_carry_the_detail(rng):
    q, k = np.zeros((1, 3, 2, 8), np.float32), np.zeros((1, 2, 4, 8), np.float32)
    with pytest.raises(qkv.ArgumentError, match="desc.q_heads 3 is not a multiple of kv_heads 2") as e:
        qkv.attention(q, k, k)
    assert e.value.status == 1 and isinstance(e.value, ValueError)
    with pytest.raises(qkv.ArgumentError, match="desc.scale -1 is not finite"):
        qkv.attention(k, k, k, scale=-1.0)
    with pytest.raises(qkv.ArgumentError, match="mask and causal"):
        qkv.attention(k, k, k, causal=True, mask=np.zeros((4, 4)))
    with pytest.raises(qkv.ArgumentError, match="does not broadcast"):
        qkv.attention(k, k, k, mask=np.zeros((3, 4)))
    with pytest.raises(qkv.ArgumentError, match="k's dim"):
        qkv.attention(k, k[..., :4], k)
    with pytest.raises(qkv.ArgumentError, match="desc.sinks holds a NaN"):
        qkv.attention(k, k, k, sinks=[0, np.nan])
    with pytest.raises(qkv.UnsupportedError, match="unknown ISA name"):
        qkv.use("AVX2")


def test_errors_are_per_thread():
    """Two threads failing at once each see their own detail."""
    seen = {}

    def fail(name, q_heads):
        q = np.zeros((1, q_heads, 1, 4), np.float32)
        k = np.zeros((1, 2, 3, 4), np.float32)
        for _ in range(200):
            try:
                qkv.attention(q, k, k)
            except qkv.ArgumentError as e:
                seen.setdefault(name, set()).add(e.detail)
    t = [threading.Thread(target=fail, args=("a", 3)), threading.Thread(target=fail, args=("b", 5))]
    for x in t:
        x.start()
    for x in t:
        x.join()
    assert seen == {"a": {"desc.q_heads 3 is not a multiple of kv_heads 2"},
                    "b": {"desc.q_heads 5 is not a multiple of kv_heads 2"}}


def test_isas_and_use():
    names = qkv.isas()
    assert names[0] == "scalar" and qkv.best_isa() in names and qkv.isa() in names
    previous = qkv.use("scalar")
    try:
        assert qkv.isa() == "scalar"
    finally:
        qkv.use(previous)
    missing = [n for n in ("avx2", "avx512", "neon", "sve") if n not in names]
    for name in missing:
        with pytest.raises(qkv.UnsupportedError, match=r"qkv_isa_set\(%s\): " % name):
            qkv.use(name)
    assert qkv.isa() == previous


def test_version():
    assert qkv.version() == qkv.__version__


def test_struct_layout_matches_the_header(tmp_path):
    """The ctypes mirror of qkv_attention_desc has the C layout: a C program
    prints sizeof and every offsetof."""
    cc = shutil.which("cc")
    include = os.environ.get("QKV_INCLUDE", os.path.join(REPO, "include"))
    if not cc or not os.path.exists(os.path.join(include, "qkv.h")):
        pytest.skip("no C compiler or qkv.h")
    fields = [f[0] for f in qkv._Desc._fields_]
    src = tmp_path / "layout.c"
    src.write_text('#include <stddef.h>\n#include <stdio.h>\n#include "qkv.h"\n'
                   "int main(void) {\n  printf(\"%zu\\n\", sizeof(qkv_attention_desc));\n"
                   + "".join('  printf("%%zu\\n", offsetof(qkv_attention_desc, %s));\n' % f
                             for f in fields) + "  return 0;\n}\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", include, str(src), "-o", str(exe)], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True,
                                          text=True).stdout.split()]
    want = [ctypes.sizeof(qkv._Desc)] + [getattr(qkv._Desc, f).offset for f in fields]
    assert got == want, "qkv_attention_desc changed: update python/qkv/__init__.py"


def run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_library_lookup(tmp_path):
    """QKV_LIBRARY, then the package's folder; a bad QKV_LIBRARY is an
    ImportError that says so."""
    env = dict(os.environ, QKV_LIBRARY=str(tmp_path / "nothing.so"))
    r = run_python("import qkv", env)
    assert r.returncode != 0 and "QKV_LIBRARY=" in r.stderr

    pkg = tmp_path / "qkv"
    shutil.copytree(os.path.dirname(qkv.__file__), pkg, ignore=shutil.ignore_patterns("*.pyc"))
    if not os.path.isfile(qkv.library_path):
        pytest.skip("the loaded library's file is not known")
    shutil.copy(qkv.library_path, pkg / "libqkv.so.0")
    env = {k: v for k, v in os.environ.items() if k not in ("QKV_LIBRARY", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(tmp_path)
    r = run_python("import qkv; print(qkv.library_path)", env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(pkg / "libqkv.so.0")


def test_seed_example():
    """The tutorial's numpy example, run through qkv, prints the numbers its
    own code computes (not the ones the tutorial printed)."""
    script = os.path.join(REPO, "examples", "seed.py")
    if not os.path.exists(script):
        pytest.skip("examples/seed.py not here")
    r = subprocess.run([sys.executable, script], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[0.577681 0.844638 0.155362 0.422319]" in r.stdout
