import MoVQKernelCore
import _Builtin_intrinsics.intel

/// The AVX2 + FMA tier (this module is compiled with -target-cpu haswell):
/// 8 lanes, ymm FMA. Only called after CPUID confirms AVX2 and FMA.
public let avx2Kernels: KernelSet = KernelSet.make(name: "avx2", SIMD8<Float>.self, FusedMulAdd.self, AVX2PairDot.self)

/// `vpmaddwd` + `vpaddd` (on Zen 3 `vpmaddwd` issues once per cycle: no
/// faster than fp32 FMA, but exact).
public enum AVX2PairDot: IntegerDot {
    @inline(__always)
    public static func dot(_ acc: SIMD8<Int32>, _ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> {
        acc &+ unsafeBitCast(_mm256_madd_epi16(unsafeBitCast(a, to: __m256i.self), unsafeBitCast(b, to: __m256i.self)), to: SIMD8<Int32>.self)
    }

    @inline(__always)
    public static func max(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    public static func float(_ x: SIMD8<Int32>) -> SIMD8<Float> { SIMD8<Float>(x) }
}
