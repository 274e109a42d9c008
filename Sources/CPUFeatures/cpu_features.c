// CPUID / XGETBV queries for run-time kernel selection. Never executes an
// instruction the CPU lacks: XGETBV only after OSXSAVE is confirmed.
#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static int os_saves(unsigned long long mask) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27))) return 0;  // OSXSAVE
    return (xgetbv0() & mask) == mask;
}

static int leaf7(unsigned int *b, unsigned int *c) {
    unsigned int a, d;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, *b, *c, d);
    return 1;
}

int movq_cpu_has_avx2_fma(void) {
    unsigned int a, b, c, d, b7, c7;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 12)) || !(c & (1u << 28))) return 0;  // FMA, AVX
    if (!os_saves(0x6)) return 0;                            // XMM | YMM
    if (!leaf7(&b7, &c7)) return 0;
    return (b7 & (1u << 5)) != 0;                            // AVX2
}

int movq_cpu_has_avx512(void) {
    unsigned int b7, c7;
    if (!movq_cpu_has_avx2_fma()) return 0;
    if (!os_saves(0xE6)) return 0;                           // + opmask, ZMM_Hi256, Hi16_ZMM
    if (!leaf7(&b7, &c7)) return 0;
    const unsigned int need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);  // F, DQ, BW, VL
    return (b7 & need) == need;
}

int movq_cpu_has_avx512_vnni(void) {
    unsigned int b7, c7;
    if (!movq_cpu_has_avx512()) return 0;
    if (!leaf7(&b7, &c7)) return 0;
    return (c7 & (1u << 11)) != 0;
}
#else
int movq_cpu_has_avx2_fma(void) { return 0; }
int movq_cpu_has_avx512(void) { return 0; }
int movq_cpu_has_avx512_vnni(void) { return 0; }
#endif
