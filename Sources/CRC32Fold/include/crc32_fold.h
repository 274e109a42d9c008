#ifndef MOVQ_CRC32_FOLD_H
#define MOVQ_CRC32_FOLD_H
#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has PCLMULQDQ and SSE4.1 (checked once with CPUID), else 0.
int movq_crc32_fold_available(void);

/// Continues the CRC-32 (IEEE, reflected) register `state` (the bit-inverted
/// CRC, as the table-driven loop keeps it) over `length` bytes by carry-less
/// multiplication folding, 64 bytes per step. `length` must be a multiple of
/// 16 and at least 64; call only when `movq_crc32_fold_available()`.
uint32_t movq_crc32_fold(uint32_t state, const unsigned char *bytes, size_t length);

#endif
