/* The SVE peak at the machine's vector length. Built with +sve only. */
#include <arm_sve.h>

#define PROBE_NAME qkv_probe_fma_sve
#define PROBE_SINK_NAME qkv_probe_sink_sve
#define PROBE_VEC svfloat32_t
#define PROBE_LANES svcntw()
#define PROBE_SET1(x) svdup_n_f32(x)
/* svmla(acc, m1, m2) is acc + m1 * m2, all lanes active. */
#define PROBE_FMA(x, a, b) svmla_f32_x(svptrue_b32(), (b), (x), (a))
#define PROBE_LANE0(x) svlasta_f32(svpfalse_b(), (x))
#define PROBE_CHAINS 16
#include "probe_fma.h"
