import MoVQKernelCore
import _Builtin_intrinsics.intel

/// The AVX-512 tier (this module is compiled with -target-cpu skylake-avx512):
/// 16 lanes, zmm FMA. Only called after CPUID confirms AVX-512 F/BW/VL/DQ.
public let avx512Kernels: KernelSet = KernelSet.make(name: "avx512", SIMD16<Float>.self, FusedMulAdd.self, AVX512PairDot.self)

/// `vpmaddwd` + `vpaddd` on zmm (AVX-512 BW).
public enum AVX512PairDot: IntegerDot {
    @inline(__always)
    public static func dot(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        acc &+ unsafeBitCast(_mm512_madd_epi16(unsafeBitCast(a, to: __m512i.self), unsafeBitCast(b, to: __m512i.self)), to: SIMD16<Int32>.self)
    }

    @inline(__always)
    public static func max(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    public static func float(_ x: SIMD16<Int32>) -> SIMD16<Float> { SIMD16<Float>(x) }
}
