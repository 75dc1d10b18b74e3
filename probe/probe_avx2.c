/* The AVX2 + FMA peak: 8-float FMAs. Built with -mavx2 -mfma only. */
#include <immintrin.h>

#define PROBE_NAME qkv_probe_fma_avx2
#define PROBE_SINK_NAME qkv_probe_sink_avx2
#define PROBE_VEC __m256
#define PROBE_LANES 8
#define PROBE_SET1(x) _mm256_set1_ps(x)
#define PROBE_FMA(x, a, b) _mm256_fmadd_ps((x), (a), (b))
#define PROBE_LANE0(x) _mm256_cvtss_f32(x)
#define PROBE_CHAINS 12
#include "probe_fma.h"
