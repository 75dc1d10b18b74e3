/*
 * Single-core memory read bandwidth: the bound for decode, which reads all
 * of K and V once per generated token and does little arithmetic on them.
 * Plain C on 64-bit words with eight independent sums: two or three loads
 * per cycle of 8 bytes already exceed what one core can pull from DRAM, so
 * no ISA-specific code is needed, and the result holds for every ISA.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

static volatile uint64_t qkv_probe_sink_mem;

double qkv_probe_read_gbs(size_t bytes, int passes)
{
    const size_t words = bytes / sizeof(uint64_t) / 8 * 8;
    if (words == 0)
        return 0.0;
    uint64_t *buf = aligned_alloc(64, words * sizeof(uint64_t));
    if (!buf)
        return 0.0;
    /* Writing every page first: untouched pages would all map the shared
       zero page, which sits in cache and fakes a huge bandwidth. */
    for (size_t i = 0; i < words; i++)
        buf[i] = i;
    double best = 0.0;
    uint64_t total = 0;
    for (int p = 0; p < passes; p++) {
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        const double t0 = qkv_probe_now();
        for (size_t i = 0; i < words; i += 8) {
            s0 += buf[i]; s1 += buf[i + 1]; s2 += buf[i + 2]; s3 += buf[i + 3];
            s4 += buf[i + 4]; s5 += buf[i + 5]; s6 += buf[i + 6]; s7 += buf[i + 7];
        }
        const double dt = qkv_probe_now() - t0;
        total += s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
        /* Best pass: other tenants' traffic only ever slows a pass down. */
        if (dt > 0 && (double)(words * sizeof(uint64_t)) / dt > best)
            best = (double)(words * sizeof(uint64_t)) / dt;
    }
    qkv_probe_sink_mem = total;
    free(buf);
    return best * 1e-9;
}
