/* The AVX512-BF16 peak: vdpbf16ps, 16 lanes each adding two bf16 products,
   so 64 flops an instruction (PROBE_LANES counts the 32 products). Built
   with -mavx512f -mavx512bf16 only. The operands are the probe template's
   float constants read as bf16 pairs (about -0.24, 1.0 and 7e-28, 1e-3):
   each step adds about 1e-3 to a chain, which stays a normal float for far
   longer than any probe runs. Compare with the FMA probe: where vdpbf16ps
   issues as often as an FMA, this doubles the avx512 figure. */
#include <immintrin.h>

#define PROBE_NAME qkv_probe_dpbf16_avx512bf16
#define PROBE_SINK_NAME qkv_probe_sink_avx512bf16
#define PROBE_VEC __m512
#define PROBE_LANES 32
#define PROBE_SET1(x) _mm512_set1_ps(x)
#define PROBE_FMA(x, a, b) _mm512_dpbf16_ps((x), (__m512bh)(a), (__m512bh)(b))
#define PROBE_LANE0(x) _mm512_cvtss_f32(x)
#define PROBE_CHAINS 16
#include "probe_fma.h"
