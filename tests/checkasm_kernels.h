/* checkasm's kernel group (tests/checkasm_kernels.c). */
#ifndef QKV_CHECKASM_KERNELS_H
#define QKV_CHECKASM_KERNELS_H

#include <stdint.h>

#include "qkvtest.h"

/* Every supported ISA's own registry entries (or only_isa's), with `scale`
   times the base number of cases, drawn from seed. */
void test_kernels(tally *t, uint64_t seed, int scale, const char *only_isa);

#endif
