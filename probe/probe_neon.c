/* The AArch64 Advanced SIMD peak: 4-float FMAs (NEON is baseline on AArch64). */
#include <arm_neon.h>

#define PROBE_NAME qkv_probe_fma_neon
#define PROBE_SINK_NAME qkv_probe_sink_neon
#define PROBE_VEC float32x4_t
#define PROBE_LANES 4
#define PROBE_SET1(x) vdupq_n_f32(x)
/* vfmaq_f32(acc, m1, m2) is acc + m1 * m2. */
#define PROBE_FMA(x, a, b) vfmaq_f32((b), (x), (a))
#define PROBE_LANE0(x) vgetq_lane_f32((x), 0)
#define PROBE_CHAINS 16
#include "probe_fma.h"
