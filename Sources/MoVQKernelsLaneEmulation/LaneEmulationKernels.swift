import MoVQKernelCore

/// Tiers for tests only: the AVX2 + FMA instruction set (this module is
/// compiled with -target-cpu haswell) running the generic kernels with the
/// vector widths of other tiers, 16 lanes as AVX-512 and 4 lanes as ARM64's
/// portable tier (both with FMA). Outputs must not depend on the tier, so an
/// AVX2 machine can check that every fused multiply-add tier gives the same
/// bits. Integer dot products use the plain-Swift `PortablePairDot`, whose
/// integers every tier matches exactly.
public let avx2Lanes16Kernels: KernelSet =
    KernelSet.make(name: "avx2x16", SIMD16<Float>.self, EmulationFusedMulAdd.self, PortablePairDot<SIMD16<Float>, SIMD16<Int32>>.self)

/// See `avx2Lanes16Kernels`.
public let avx2Lanes4Kernels: KernelSet =
    KernelSet.make(name: "avx2x4", SIMD4<Float>.self, EmulationFusedMulAdd.self, PortablePairDot<SIMD4<Float>, SIMD4<Int32>>.self)

/// `FusedMulAdd` under another name: specializations are named by their
/// type arguments, and `SIMD16<Float>` with `FusedMulAdd` is also the
/// AVX-512 tiers' instantiation, so the linker would keep one copy, AVX-512
/// code, for both. Its own type gives this module's haswell code its own symbols.
public enum EmulationFusedMulAdd: MulAdd {
    @inlinable @inline(__always)
    public static func madd<V: SIMD>(_ acc: V, _ a: V, _ b: V) -> V where V.Scalar == Float { acc.addingProduct(a, b) }
}
