/* The AVX-512 peak: 16-float FMAs on zmm registers. Built with -mavx512f only. */
#include <immintrin.h>

#define PROBE_NAME qkv_probe_fma_avx512
#define PROBE_SINK_NAME qkv_probe_sink_avx512
#define PROBE_VEC __m512
#define PROBE_LANES 16
#define PROBE_SET1(x) _mm512_set1_ps(x)
#define PROBE_FMA(x, a, b) _mm512_fmadd_ps((x), (a), (b))
#define PROBE_LANE0(x) _mm512_cvtss_f32(x)
#define PROBE_CHAINS 16
#include "probe_fma.h"
