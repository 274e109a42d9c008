/// Integer dot products on pairs of signed 16-bit values packed in 32-bit
/// lanes (low half, high half): the int16 Winograd GEMM's multiply-add.
/// x86 tiers map it to one instruction (`vpmaddwd` + `vpaddd`, or AVX-512
/// VNNI `vpdpwssd`); `PortablePairDot` is the plain-Swift definition they
/// must match exactly.
public protocol PairDot {
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

/// The reference `PairDot`, written with shifts and multiplies.
public enum PortablePairDot<F: SIMD, L: SIMD>: PairDot where F.Scalar == Float, L.Scalar == Int32 {
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
