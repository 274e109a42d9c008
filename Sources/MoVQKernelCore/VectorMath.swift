/// Vectorized exp(x) for Float lanes: range reduction x = n ln2 + r, a
/// degree-6 polynomial for e^r on |r| <= ln2 / 2 (Cephes expf coefficients),
/// then scaling by 2^n through the exponent bits. Max relative error ~2 ulp;
/// inputs below -87.3 give exp(-87.3) ~ 1e-38, above 88.3 are treated as 88.3 (so exp never
/// overflows inside; callers here only need exp of non-positive values and of
/// -x for SiLU).
@inlinable @inline(__always)
public func vexp<V: SIMD, M: MulAdd>(_ x: V, _: M.Type) -> V where V.Scalar == Float {
    let hi = V(repeating: 88.3), lo = V(repeating: -87.33654)
    let xc = pointwiseMax(pointwiseMin(x, hi), lo)
    let n = (xc * V(repeating: 1.44269504088896341)).rounded(.toNearestOrEven)
    var r = M.madd(xc, n, V(repeating: -0.693359375))
    r = M.madd(r, n, V(repeating: 2.12194440e-4))
    var p = V(repeating: 1.9875691500e-4)
    p = M.madd(V(repeating: 1.3981999507e-3), p, r)
    p = M.madd(V(repeating: 8.3334519073e-3), p, r)
    p = M.madd(V(repeating: 4.1665795894e-2), p, r)
    p = M.madd(V(repeating: 1.6666665459e-1), p, r)
    p = M.madd(V(repeating: 5.0000001201e-1), p, r)
    p = M.madd(r, p, r * r)
    p = p + V(repeating: 1)
    // 2^n through the exponent bits: n + 1.5 * 2^23 puts n in the low mantissa bits.
    let t = n + V(repeating: 12582912)
    var bits = unsafeBitCast(t, to: V.MaskStorage.self)
    bits = (bits &- V.MaskStorage(repeating: 0x4B40_0000 - 127)) &<< 23
    return p * unsafeBitCast(bits, to: V.self)
}

/// Vectorized SiLU, `x / (1 + exp(-x))`.
@inlinable @inline(__always)
public func vsilu<V: SIMD, M: MulAdd>(_ x: V, _ m: M.Type) -> V where V.Scalar == Float {
    x / (V(repeating: 1) + vexp(-x, m))
}

/// Accumulators of a reduction whose rounding does not depend on the
/// vector width: values come in blocks of 16 "virtual lanes" (lane `j`
/// accumulates the block elements at `j`, block after block), held as
/// `16 / V.scalarCount` vectors, and `sum()` adds the 16 lanes by the fixed
/// halving tree `(a[j] + a[j + 8])`, then `+4`, `+2`, `+1` (as
/// `CategoricalDraw`). 4-, 8- and 16-lane tiers so compute the same bits.
@usableFromInline
struct Lanes16<V: SIMD> where V.Scalar == Float {
    @usableFromInline var v0 = V(), v1 = V(), v2 = V(), v3 = V()

    @inlinable init() {}

    /// Calls `body(offset, &accumulator)` for each vector of one 16-lane
    /// block: offsets 0, w, 2w, 3w for `w = V.scalarCount` lanes.
    @inlinable @inline(__always)
    mutating func forEachPart(_ body: (Int, inout V) -> Void) {
        let w = V.scalarCount
        body(0, &v0)
        if w <= 8 { body(w, &v1) }
        if w <= 4 { body(2 * w, &v2); body(3 * w, &v3) }
    }

    /// The 16 lanes added by the halving tree.
    @inlinable
    func sum() -> Float {
        let w = V.scalarCount
        precondition(16 % w == 0 && w >= 4, "Lanes16 needs 4, 8 or 16 lanes")
        var s = SIMD16<Float>()
        for i in 0..<w {
            s[i] = v0[i]
            if w <= 8 { s[w + i] = v1[i] }
            if w <= 4 { s[2 * w + i] = v2[i]; s[3 * w + i] = v3[i] }
        }
        let h8 = s.lowHalf + s.highHalf, h4 = h8.lowHalf + h8.highHalf, h2 = h4.lowHalf + h4.highHalf
        return h2[0] + h2[1]
    }
}
