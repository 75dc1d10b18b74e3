/* The FMA peak of every ISA the CPU runs, for the benchmark and the tool.
   One table names the probes that were built (probe/meson.build defines
   QKV_PROBE_<ISA> for each); an ISA without a probe of its own runs its f32
   work on its parent's FMAs (avx512bf16 and amx on avx512's) and takes the
   parent's figure, so each FMA unit is measured once. */
#include "probe.h"

#include "isa_list.h"

static qkv_probe_fn own_probe(qkv_isa isa)
{
    switch (isa) {
    case QKV_ISA_SCALAR: return qkv_probe_fma_scalar;
#ifdef QKV_PROBE_AVX2
    case QKV_ISA_AVX2: return qkv_probe_fma_avx2;
#endif
#ifdef QKV_PROBE_AVX512
    case QKV_ISA_AVX512: return qkv_probe_fma_avx512;
#endif
#ifdef QKV_PROBE_NEON
    case QKV_ISA_NEON: return qkv_probe_fma_neon;
#endif
#ifdef QKV_PROBE_SVE
    case QKV_ISA_SVE: return qkv_probe_fma_sve;
#endif
    default: return NULL;
    }
}

void qkv_probe_fma_peaks(double peak[QKV_ISA_COUNT], double seconds)
{
#define X(E, name, P, features) [QKV_ISA_##E] = QKV_ISA_##P,
    static const qkv_isa parent[QKV_ISA_COUNT] = {QKV_ISA_LIST(X)};
#undef X
    /* isa_list.h puts a parent before its children. */
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_isa isa = (qkv_isa)i;
        const qkv_probe_fn f = own_probe(isa);
        peak[i] = 0.0;
        if (!qkv_isa_supported(isa))
            continue;
        peak[i] = f ? f(seconds) : peak[parent[i]];
    }
}
