/*
 * The scalar peak: what one core does with plain float multiplies and adds.
 * Built like the scalar kernels (no auto-vectorization, no FMA contraction,
 * baseline flags), so it is the ceiling the scalar reference can reach, not
 * the machine's.
 */
#define PROBE_NAME qkv_probe_fma_scalar
#define PROBE_SINK_NAME qkv_probe_sink_scalar
#define PROBE_VEC float
#define PROBE_LANES 1
#define PROBE_SET1(x) (x)
#define PROBE_FMA(x, a, b) ((x) * (a) + (b))
#define PROBE_LANE0(x) (x)
#define PROBE_CHAINS 12
#include "probe_fma.h"
