#ifndef MOVQ_CPU_FEATURES_H
#define MOVQ_CPU_FEATURES_H

/// 1 if the CPU and OS support AVX2 and FMA (ymm state enabled), else 0.
int movq_cpu_has_avx2_fma(void);
/// 1 if the CPU and OS support AVX-512 F, BW, VL and DQ (zmm state enabled), else 0.
int movq_cpu_has_avx512(void);
/// 1 if the CPU supports AVX-512 VNNI, else 0.
int movq_cpu_has_avx512_vnni(void);

#endif
