"""qkv: scaled dot-product attention on the CPU, for numpy arrays.

    O = softmax(scale * Q @ K^T + mask) @ V

A ctypes binding over the installed libqkv.so (the C library's
hand-vectorized kernels: scalar, AVX2, AVX-512, NEON, SVE, chosen at run
time). Pure Python; needs numpy.

    import numpy as np, qkv
    q = np.random.rand(1, 32, 1, 128).astype(np.float32)     # [batch, heads, len, dim]
    k = np.random.rand(1, 8, 4096, 128).astype(np.float32)   # 8 KV heads: GQA
    v = np.random.rand(1, 8, 4096, 128).astype(np.float32)
    o = qkv.attention(q, k, v, causal=True)                  # [1, 32, 1, 128] float32

The library is found, in this order, at the path in the environment
variable QKV_LIBRARY, in this package's folder (libqkv.so.0 copied next to
this file), or by the system's loader (LD_LIBRARY_PATH, ldconfig's cache).
Errors raise qkv.Error subclasses whose text is the library's detail
("desc.q_heads 3 is not a multiple of kv_heads 2").
"""

import atexit
import ctypes
import ctypes.util
import math
import os
import threading

import numpy as np

__version__ = "0.2.0"

__all__ = [
    "attention", "scores", "softmax", "weighted_sum", "isas", "isa", "best_isa", "use",
    "version", "library_path", "Error", "ArgumentError", "SizeOverflowError",
    "UnsupportedError", "NoMemoryError",
]

# ---- the library ---------------------------------------------------------------

_SONAME = "libqkv.so.0"


def _load():
    """The library and where it came from (see the module's docstring)."""
    path = os.environ.get("QKV_LIBRARY")
    if path:
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            raise ImportError("qkv: QKV_LIBRARY=%s cannot be loaded: %s" % (path, e)) from None
    here = os.path.dirname(os.path.abspath(__file__))
    for name in (_SONAME, "libqkv.so"):
        local = os.path.join(here, name)
        if os.path.exists(local):
            return ctypes.CDLL(local), local
    tried = []
    for name in (_SONAME, ctypes.util.find_library("qkv")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            tried.append(str(e))
    raise ImportError(
        "qkv: libqkv.so not found (%s). Install qkv (meson install), then either put its "
        "libdir on LD_LIBRARY_PATH (e.g. PREFIX/lib/x86_64-linux-gnu), run ldconfig, or set "
        "QKV_LIBRARY=/path/to/libqkv.so.0" % "; ".join(tried))


def _loaded_path(name):
    """The file the loader picked for `name` (from /proc/self/maps), or name."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(None, 5)[-1].strip()
                if os.path.basename(path).startswith("libqkv.so"):
                    return path
    except OSError:
        pass
    return name


_lib, library_path = _load()
library_path = _loaded_path(library_path)

_lib.qkv_version.restype = ctypes.c_uint
_lib.qkv_version_string.restype = ctypes.c_char_p
_lib.qkv_status_string.restype = ctypes.c_char_p
_lib.qkv_status_string.argtypes = [ctypes.c_int]
_lib.qkv_last_error_detail.restype = ctypes.c_char_p
_lib.qkv_isa_name.restype = ctypes.c_char_p
_lib.qkv_isa_name.argtypes = [ctypes.c_int]
_lib.qkv_isa_supported.argtypes = [ctypes.c_int]
_lib.qkv_isa_set.argtypes = [ctypes.c_int]
_lib.qkv_isa_from_name.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
_lib.qkv_pool_create.argtypes = [ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
_lib.qkv_pool_destroy.argtypes = [ctypes.c_void_p]
_lib.qkv_default_scale.restype = ctypes.c_float
_lib.qkv_default_scale.argtypes = [ctypes.c_size_t]

# The structs below mirror include/qkv.h of this version; another minor
# version may lay them out differently.
_lib_version = _lib.qkv_version()
if _lib_version // 100 != 2:
    raise ImportError("qkv: this binding (%s) needs libqkv 0.2.x, but %s is %s"
                      % (__version__, library_path, _lib.qkv_version_string().decode()))

_F32, _F16 = 0, 1
_MASK_NONE, _MASK_CAUSAL, _MASK_ADDITIVE = 0, 1, 2
_OK, _ERR_ARG, _ERR_OVERFLOW, _ERR_UNSUPPORTED, _ERR_NOMEM = range(5)
_size = ctypes.c_size_t


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int), ("batch_stride", _size),
                ("head_stride", _size), ("row_stride", _size)]


class _OutTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("batch_stride", _size), ("head_stride", _size),
                ("row_stride", _size), ("dtype", ctypes.c_int)]


class _FloatMask(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("batch_stride", _size), ("head_stride", _size),
                ("row_stride", _size)]


class _Desc(ctypes.Structure):
    _fields_ = [("batch", _size), ("q_heads", _size), ("kv_heads", _size), ("q_len", _size),
                ("kv_len", _size), ("head_dim", _size), ("v_head_dim", _size),
                ("q", _Tensor), ("k", _Tensor), ("v", _Tensor), ("o", _OutTensor),
                ("scale", ctypes.c_float), ("mask", ctypes.c_int), ("mask_add", _FloatMask),
                ("window", _size), ("softcap", ctypes.c_float),
                ("alibi_slopes", ctypes.c_void_p), ("sinks", ctypes.c_void_p),
                ("lse", ctypes.c_void_p), ("parallel_for", ctypes.c_void_p),
                ("pool", ctypes.c_void_p), ("fpmath", ctypes.c_int),
                ("page_size", _size), ("num_pages", _size), ("page_table", ctypes.c_void_p),
                ("page_table_stride", _size), ("k_page_stride", _size), ("v_page_stride", _size),
                ("q_start", ctypes.c_void_p), ("kv_lens", ctypes.c_void_p)]


_ATTENTION = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_Desc))
_lib.qkv_attention.argtypes = [ctypes.POINTER(_Desc)]
_fp = ctypes.POINTER(ctypes.c_float)
_lib.qkv_scores.argtypes = [_size, _size, _size, ctypes.c_float, _fp, _size, _fp, _size, _fp, _size]
_lib.qkv_softmax.argtypes = [_size, _size, _fp, _size]
_lib.qkv_weighted_sum.argtypes = [_size, _size, _size, _fp, _size, _fp, _size, _fp, _size]


class _Funcs(ctypes.Structure):
    """qkv_funcs: one ISA's entry points (only attention is called here)."""
    _fields_ = [("isa", ctypes.c_int), ("scores", ctypes.c_void_p), ("softmax", ctypes.c_void_p),
                ("weighted_sum", ctypes.c_void_p), ("attention", _ATTENTION),
                ("convert", ctypes.c_void_p), ("merge_states", ctypes.c_void_p)]


# QKV_ISA_COUNT of the library loaded: its names run out at "unknown".
_ISA_COUNT = next(i for i in range(64) if _lib.qkv_isa_name(i) == b"unknown")

_lib.qkv_isa_funcs.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.POINTER(_Funcs))]

# ---- errors ----------------------------------------------------------------------


class Error(Exception):
    """A qkv call failed. .status is the qkv_status number, .detail the
    library's text naming the field and the rule."""

    def __init__(self, status, detail):
        self.status = status
        self.detail = detail
        text = _lib.qkv_status_string(status).decode()
        super().__init__("%s: %s" % (text, detail) if detail else text)


class ArgumentError(Error, ValueError):
    """QKV_ERR_ARG: a bad size, stride, pointer, scale or mask."""


class SizeOverflowError(Error, OverflowError):
    """QKV_ERR_OVERFLOW: the sizes and strides overflow the address space."""


class UnsupportedError(Error):
    """QKV_ERR_UNSUPPORTED: the ISA or dtype is not available in this build or CPU."""


class NoMemoryError(Error, MemoryError):
    """QKV_ERR_NOMEM: the library could not allocate (thread pool, merge buffer)."""


_ERRORS = {_ERR_ARG: ArgumentError, _ERR_OVERFLOW: SizeOverflowError,
           _ERR_UNSUPPORTED: UnsupportedError, _ERR_NOMEM: NoMemoryError}


def _check(status):
    if status != _OK:
        detail = _lib.qkv_last_error_detail().decode(errors="replace")
        raise _ERRORS.get(status, Error)(status, detail)


def _arg_error(detail):
    return ArgumentError(_ERR_ARG, detail)

# ---- instruction sets ----------------------------------------------------------


def version():
    """The loaded library's version, e.g. "0.2.0"."""
    return _lib.qkv_version_string().decode()


def _isa_number(name):
    out = ctypes.c_int()
    _check(_lib.qkv_isa_from_name(name.encode(), ctypes.byref(out)))
    return out.value


def isas():
    """The names of the ISAs this build and CPU run, scalar first."""
    return [_lib.qkv_isa_name(i).decode() for i in range(_ISA_COUNT) if _lib.qkv_isa_supported(i)]


def isa():
    """The ISA the library's calls use now ("none" when QKV_ISA named an unknown one)."""
    return _lib.qkv_isa_name(_lib.qkv_isa_get()).decode()


def best_isa():
    """The best ISA this machine runs."""
    return _lib.qkv_isa_name(_lib.qkv_isa_best()).decode()


def use(name):
    """Makes the ISA `name` the process-wide choice; returns the previous one.
    UnsupportedError (with the reason) when it cannot run here."""
    previous = isa()
    _check(_lib.qkv_isa_set(_isa_number(name)))
    return previous


def _funcs(name):
    out = ctypes.POINTER(_Funcs)()
    _check(_lib.qkv_isa_funcs(_isa_number(name), ctypes.byref(out)))
    return out.contents

# ---- thread pools ------------------------------------------------------------------

_pools = {}
_pools_lock = threading.Lock()
_parallel_for = ctypes.cast(_lib.qkv_pool_parallel_for, ctypes.c_void_p).value


def _pool(threads):
    """A qkv_pool of `threads` workers, made once and kept until exit."""
    with _pools_lock:
        if threads not in _pools:
            p = ctypes.c_void_p()
            _check(_lib.qkv_pool_create(threads, ctypes.byref(p)))
            _pools[threads] = p
        return _pools[threads]


@atexit.register
def _destroy_pools():
    with _pools_lock:
        for p in _pools.values():
            _lib.qkv_pool_destroy(p)
        _pools.clear()

# ---- arrays ----------------------------------------------------------------------


def _as_input(x, name, allow_f16=True):
    """x as an array the library reads: float32 (or float16) with a
    contiguous last dimension and non-negative strides; other real types
    are converted to float32."""
    x = np.asarray(x)
    if x.dtype != np.float32 and not (allow_f16 and x.dtype == np.float16):
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
                or x.dtype == np.bool_):
            raise TypeError("qkv: %s has dtype %s; float32 or float16 expected" % (name, x.dtype))
        x = x.astype(np.float32)
    if x.ndim and (x.strides[-1] != x.itemsize or any(s < 0 or s % x.itemsize
                                                      for s in x.strides)):
        x = np.ascontiguousarray(x)
    return x


def _elem_strides(x):
    return [s // x.itemsize for s in x.strides]


def _ptr(x):
    return x.ctypes.data if x is not None else None


def _strides3(x4):
    """The (batch, head, row) strides in elements of a 4-d array. A row
    stride below the row length is only allowed for a single row (the
    library checks row_stride >= dim), so a single row gets the length."""
    s = _elem_strides(x4)
    return [s[0], s[1], s[2] if x4.shape[2] > 1 else x4.shape[3]]


def _as_4d(x, name, layout):
    """[batch, heads, len, dim] (layout "bhsd") or [batch, len, heads, dim]
    ("bshd") of any array of 2 to 4 dimensions: the view the library gets,
    and its (batch, head, row) strides in elements. Broadcast batch or heads
    (stride 0) stay views; rows that overlap are copied."""
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    elif x.ndim != 4:
        raise _arg_error("%s has %d dimensions; 2 to 4 expected" % (name, x.ndim))
    if layout == "bshd":
        x = x.transpose(0, 2, 1, 3)
    elif layout != "bhsd":
        raise _arg_error('layout "%s": "bhsd" or "bshd" expected' % layout)
    if x.shape[2] > 1 and x.strides[2] < x.shape[3] * x.itemsize:
        x = np.ascontiguousarray(x)
    return x, _strides3(x)


def _small_vector(x, n, name):
    if x is None:
        return None
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if x.size != n:
        raise _arg_error("%s has %d values; one per query head (%d) expected" % (name, x.size, n))
    return x


def attention(q, k, v, scale=None, causal=False, mask=None, window=0, softcap=0.0,
              alibi_slopes=None, sinks=None, return_lse=False, threads=None, isa=None,
              layout="bhsd"):
    """Multi-head attention softmax(scale * q @ k^T + mask) @ v in one call.

    q: [batch, q_heads, q_len, dim]; k: [batch, kv_heads, kv_len, dim];
    v: [batch, kv_heads, kv_len, v_dim] (layout="bhsd"), or with the length
    and heads axes swapped ([batch, len, heads, dim], layout="bshd"), read in
    place through strides. 3-d arrays drop the batch axis, 2-d ones also the
    heads. q_heads must be a multiple of kv_heads (GQA, MQA): query head h
    reads KV head h // (q_heads // kv_heads).

    dtypes: float32 and float16 are passed as stored (float16 is widened
    exactly to float32 here while this library build has no float16
    kernels); other real arrays are converted to float32. The output is a
    new float32 array shaped like q but with v's last dimension.

    scale: default 1/sqrt(dim). causal: query i sees key j iff
    j <= i + kv_len - q_len (bottom-right aligned, as decoding needs).
    mask: an additive float mask broadcastable to [batch, q_heads, q_len,
    kv_len] (-inf hides a key), or a boolean one (True = may attend); not
    together with causal. window: only the last `window` keys up to the
    query's position. softcap: scores become cap * tanh(s / cap).
    alibi_slopes, sinks: one float per query head. return_lse: also return
    the log-sum-exp of each row, [batch, q_heads, q_len] in either layout
    (without the axes q lacks). threads: run on a qkv thread pool of that
    many threads (kept for later calls). isa: run on that ISA ("avx2", ...)
    instead of the process-wide choice.
    """
    q, k, v = _as_input(q, "q"), _as_input(k, "k"), _as_input(v, "v")
    if not (q.ndim == k.ndim == v.ndim):
        raise _arg_error("q, k and v have %d, %d and %d dimensions" % (q.ndim, k.ndim, v.ndim))
    q4, qs = _as_4d(q, "q", layout)
    k4, ks = _as_4d(k, "k", layout)
    v4, vs = _as_4d(v, "v", layout)
    batch, q_heads, q_len, dim = q4.shape
    _, kv_heads, kv_len, _ = k4.shape
    v_dim = v4.shape[3]
    if k4.shape[0] != batch or v4.shape[0] != batch:
        raise _arg_error("batch sizes differ: q %d, k %d, v %d" % (batch, k4.shape[0], v4.shape[0]))
    if k4.shape[3] != dim:
        raise _arg_error("k's dim %d != q's dim %d" % (k4.shape[3], dim))
    if v4.shape[1:3] != (kv_heads, kv_len):
        raise _arg_error("v's heads and length %s != k's %s" % (v4.shape[1:3], (kv_heads, kv_len)))

    # [batch, q_heads, q_len, v_dim], or its bshd transpose, as given.
    if layout == "bshd":
        out = np.empty((batch, q_len, q_heads, v_dim), np.float32)
        o4 = out.transpose(0, 2, 1, 3)
    else:
        out = np.empty((batch, q_heads, q_len, v_dim), np.float32)
        o4 = out
    os_ = _elem_strides(o4)
    lse = np.empty((batch, q_heads, q_len), np.float32) if return_lse else None

    d = _Desc()
    d.batch, d.q_heads, d.kv_heads = batch, q_heads, kv_heads
    d.q_len, d.kv_len, d.head_dim, d.v_head_dim = q_len, kv_len, dim, v_dim
    d.o = _OutTensor(o4.ctypes.data, os_[0], os_[1], os_[2], _F32)
    d.scale = 1.0 / math.sqrt(dim) if scale is None else scale
    d.window = window
    d.softcap = softcap
    slopes = _small_vector(alibi_slopes, q_heads, "alibi_slopes")
    sink = _small_vector(sinks, q_heads, "sinks")
    d.alibi_slopes, d.sinks, d.lse = _ptr(slopes), _ptr(sink), _ptr(lse)

    m = None
    if mask is not None:
        if causal:
            raise _arg_error("mask and causal together: fold the causal cut into the mask")
        m = np.asarray(mask)
        if m.dtype == np.bool_:
            m = np.where(m, np.float32(0), np.float32(-np.inf))
        m = np.asarray(m, dtype=np.float32)
        try:
            m = np.broadcast_to(m, (batch, q_heads, q_len, kv_len))
        except ValueError:
            raise _arg_error("mask of shape %s does not broadcast to [batch, q_heads, q_len, "
                             "kv_len] = %s" % (m.shape, (batch, q_heads, q_len, kv_len))) from None
        ms = _elem_strides(m)
        # Broadcast batch and heads (stride 0) are free; the rows and keys
        # of the mask must be real.
        if ms[3] != 1 or (q_len > 1 and ms[2] < kv_len) or any(s < 0 for s in ms):
            m = np.ascontiguousarray(m)
            ms = _elem_strides(m)
        d.mask = _MASK_ADDITIVE
        d.mask_add = _FloatMask(m.ctypes.data, ms[0] if batch > 1 else 0,
                                ms[1] if q_heads > 1 else 0, ms[2] if q_len > 1 else kv_len)
    elif causal:
        d.mask = _MASK_CAUSAL
    if threads is not None and threads > 1:
        d.parallel_for = _parallel_for
        d.pool = _pool(int(threads)).value
    call = _funcs(isa).attention if isa is not None else _lib.qkv_attention

    def run(q4, k4, v4):
        dt = [_F16 if x.dtype == np.float16 else _F32 for x in (q4, k4, v4)]
        d.q = _Tensor(q4.ctypes.data, dt[0], *qs)
        d.k = _Tensor(k4.ctypes.data, dt[1], *ks)
        d.v = _Tensor(v4.ctypes.data, dt[2], *vs)
        return call(ctypes.byref(d))

    st = run(q4, k4, v4)
    if st == _ERR_UNSUPPORTED and any(x.dtype == np.float16 for x in (q4, k4, v4)):
        # No float16 kernels in this build: widening is exact, so the
        # float32 kernels give what they would (QKV_FPMATH_STRICT).
        q4, k4, v4 = (x.astype(np.float32) if x.dtype == np.float16 else x for x in (q4, k4, v4))
        qs, ks, vs = (_strides3(x) for x in (q4, k4, v4))
        st = run(q4, k4, v4)
    _check(st)
    # As many dimensions as q was given with.
    out = out.reshape(out.shape[4 - q.ndim:]) if q.ndim < 4 else out
    if lse is not None and q.ndim < 4:
        lse = lse.reshape(lse.shape[4 - q.ndim:]) if q.ndim == 3 else lse.reshape(q_len)
    return (out, lse) if return_lse else out


def _matrix(x, name):
    x = _as_input(x, name, allow_f16=False)
    if x.ndim != 2:
        raise _arg_error("%s must be 2-d (rows, columns), not %d-d" % (name, x.ndim))
    if x.shape[0] > 1 and x.strides[0] < x.shape[1] * x.itemsize:
        x = np.ascontiguousarray(x)     # overlapping rows (e.g. broadcast)
    return x


def _ld(x):
    """The leading dimension in elements (a single row: its length)."""
    return x.strides[0] // x.itemsize if x.shape[0] > 1 else x.shape[1]


def _row_ptr(x):
    return ctypes.cast(x.ctypes.data, _fp)


def scores(q, k, scale=1.0):
    """The first textbook step: S = scale * q @ k^T for q [m, d], k [n, d]."""
    q, k = _matrix(q, "q"), _matrix(k, "k")
    if q.shape[1] != k.shape[1]:
        raise _arg_error("q's d %d != k's d %d" % (q.shape[1], k.shape[1]))
    s = np.empty((q.shape[0], k.shape[0]), np.float32)
    _check(_lib.qkv_scores(q.shape[0], k.shape[0], q.shape[1], scale, _row_ptr(q), _ld(q),
                           _row_ptr(k), _ld(k), _row_ptr(s), k.shape[0]))
    return s


def softmax(s):
    """The second step: each row of s [m, n] becomes its softmax (a new array)."""
    s = np.array(_matrix(s, "s"), dtype=np.float32, order="C", copy=True)
    _check(_lib.qkv_softmax(s.shape[0], s.shape[1], _row_ptr(s), s.shape[1]))
    return s


def weighted_sum(p, v):
    """The third step: O = p @ v for p [m, n], v [n, dv]."""
    p, v = _matrix(p, "p"), _matrix(v, "v")
    if p.shape[1] != v.shape[0]:
        raise _arg_error("p has %d columns but v %d rows" % (p.shape[1], v.shape[0]))
    o = np.empty((p.shape[0], v.shape[1]), np.float32)
    _check(_lib.qkv_weighted_sum(p.shape[0], p.shape[1], v.shape[1], _row_ptr(p), _ld(p),
                                 _row_ptr(v), _ld(v), _row_ptr(o), v.shape[1]))
    return o
