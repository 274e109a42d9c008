import MoVQKernelCore

/// The AVX2 + FMA tier (this module is compiled with -target-cpu haswell):
/// 8 lanes, ymm FMA. Only called after CPUID confirms AVX2 and FMA.
public let avx2Kernels: KernelSet = KernelSet.make(name: "avx2", SIMD8<Float>.self, FusedMulAdd.self)
