import MoVQKernelCore

/// The AVX-512 tier (this module is compiled with -target-cpu skylake-avx512):
/// 16 lanes, zmm FMA. Only called after CPUID confirms AVX-512 F/BW/VL/DQ.
public let avx512Kernels: KernelSet = KernelSet.make(name: "avx512", SIMD16<Float>.self, FusedMulAdd.self)
