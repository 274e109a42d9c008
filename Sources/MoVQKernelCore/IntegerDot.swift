/// Integer dot products of small integers packed in 32-bit lanes, summed
/// into 32-bit accumulators: pairs of signed 16-bit values (low half, high
/// half; the int16 GEMMs of Winograd and the linears), or on VNNI quads of
/// u8 x s8 bytes (`VNNIQuadDot`, the u8 x s8 linears). x86 tiers map `dot`
/// to one instruction (`vpmaddwd` + `vpaddd`, AVX-512 VNNI `vpdpwssd` or
/// `vpdpbusd`); `PortablePairDot` is the plain-Swift pair definition they
/// must match exactly.
public protocol IntegerDot {
    /// 32-bit integer lanes, as many as `Floats`.
    associatedtype Lanes: SIMD where Lanes.Scalar == Int32
    /// The tier's float vector.
    associatedtype Floats: SIMD where Floats.Scalar == Float
    /// `acc + lo(a) * lo(b) + hi(a) * hi(b)` per lane (wrapping; callers keep sums in range).
    static func dot(_ acc: Lanes, _ a: Lanes, _ b: Lanes) -> Lanes
    /// Converts each lane to Float (round to nearest).
    static func float(_ x: Lanes) -> Floats
    /// Lane-wise maximum (tiers implement it on their concrete type, where
    /// it is one instruction; generic SIMD comparisons go lane by lane).
    static func max(_ a: Lanes, _ b: Lanes) -> Lanes
}

/// The reference `IntegerDot`, written with shifts and multiplies.
public enum PortablePairDot<F: SIMD, L: SIMD>: IntegerDot where F.Scalar == Float, L.Scalar == Int32 {
    public typealias Lanes = L
    public typealias Floats = F

    @inlinable @inline(__always)
    public static func dot(_ acc: L, _ a: L, _ b: L) -> L {
        let lo = ((a &<< 16) &>> 16) &* ((b &<< 16) &>> 16)  // arithmetic shifts sign-extend the low halves
        return acc &+ lo &+ (a &>> 16) &* (b &>> 16)
    }

    @inlinable @inline(__always)
    public static func max(_ a: L, _ b: L) -> L { a.replacing(with: b, where: b .> a) }

    @inlinable @inline(__always)
    public static func float(_ x: L) -> F {
        var f = F()
        for i in 0..<F.scalarCount { f[i] = Float(x[i]) }
        return f
    }
}
