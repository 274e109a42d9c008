import MoVQKernelCore
import _Builtin_intrinsics.intel

/// The AVX-512 VNNI tier (this module is compiled with -target-cpu
/// cascadelake): the AVX-512 kernels plus `vpdpwssd` for int16 Winograd
/// GEMMs (32 multiply-adds per instruction, twice the fp32 FMA). Only called
/// after CPUID confirms AVX-512 F/BW/VL/DQ and VNNI.
public let avx512VNNIKernels: KernelSet = KernelSet.make(name: "avx512vnni", SIMD16<Float>.self, FusedMulAdd.self, VNNIPairDot.self)
    .adding(quads: VNNIQuadDot.self, SIMD16<Float>.self, FusedMulAdd.self)

/// `vpdpbusd`: four u8 (first operand) x s8 (second) products summed into each int32 lane.
public enum VNNIQuadDot: IntegerDot {
    @inline(__always)
    public static func dot(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        unsafeBitCast(_mm512_dpbusd_epi32(unsafeBitCast(acc, to: __m512i.self), unsafeBitCast(a, to: __m512i.self),
                                          unsafeBitCast(b, to: __m512i.self)), to: SIMD16<Int32>.self)
    }

    @inline(__always)
    public static func max(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    public static func float(_ x: SIMD16<Int32>) -> SIMD16<Float> { SIMD16<Float>(x) }
}

/// `vpdpwssd`: multiply int16 pairs and accumulate into int32 in one instruction.
public enum VNNIPairDot: IntegerDot {
    @inline(__always)
    public static func dot(_ acc: SIMD16<Int32>, _ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        unsafeBitCast(_mm512_dpwssd_epi32(unsafeBitCast(acc, to: __m512i.self), unsafeBitCast(a, to: __m512i.self),
                                          unsafeBitCast(b, to: __m512i.self)), to: SIMD16<Int32>.self)
    }

    @inline(__always)
    public static func max(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    public static func float(_ x: SIMD16<Int32>) -> SIMD16<Float> { SIMD16<Float>(x) }
}
