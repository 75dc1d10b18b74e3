/*
 * SIMD_UNROLL: the pragma that unrolls the loop after it completely, in
 * gcc's and clang's spellings. Shared by every ISA's vocabulary and
 * template.
 */
#ifndef QKV_SIMD_UNROLL_H
#define QKV_SIMD_UNROLL_H

/* Loops over a microkernel's rows and vectors, or over the vectors of a
   transposition, must unroll completely so that their arrays of vectors
   become registers; clang needs its own spelling for it (without it the
   tile lives in memory, 4x slower, and the stack holds the arrays: a
   transposition's 3 KiB on AVX-512). 16: the decode dot products loop over
   VL = 16 accumulators on AVX-512 (with 8, gcc kept a copy of them in
   memory, zeroed for every block of keys). */
#if defined(__clang__)
#define SIMD_UNROLL _Pragma("clang loop unroll(full)")
#else
#define SIMD_UNROLL _Pragma("GCC unroll 16")
#endif

#endif
