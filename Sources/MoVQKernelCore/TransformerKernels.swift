/// Element-wise and per-position kernels of the transformer, on feature-major
/// activations `[channels][positions]` (planes `planeStride` apart), so every
/// loop runs along positions in full vectors. Ranges are rounded up to whole
/// vectors: planes carry slack for that.
public enum TransformerKernels<V: SIMD, M: MulAdd> where V.Scalar == Float {
    /// GELU, tanh form: `0.5 x (1 + tanh(u))` with `u = sqrt(2/pi) (x + 0.044715 x^3)`,
    /// computed as `x / (1 + exp(-2u))` (the same function).
    @inlinable @inline(__always)
    static func gelu(_ x: V) -> V {
        let x3 = x * x * x
        let u = M.madd(x, x3, V(repeating: 0.044715)) * V(repeating: -2 * 0.7978845608028654)
        return x / (V(repeating: 1) + vexp(u, M.self))
    }

    /// In place: `p[i] = gelu(p[i])` for `i < count` (rounded up to a vector).
    @inlinable
    public static func gelu(_ p: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count { store(gelu(load(p + i, as: V.self)), p + i); i += V.scalarCount }
    }

    /// In place: `a[i] = a[i] * gelu(g[i])` for `i < count` (GEGLU).
    @inlinable
    public static func geglu(_ a: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i < count { store(load(a + i, as: V.self) * gelu(load(g + i, as: V.self)), a + i); i += V.scalarCount }
    }

    /// LayerNorm (or RMSNorm with `rms`) over the channels of each position
    /// in `positions`: `y = (x - mean) / sqrt(var + eps) * weight + bias`
    /// (RMSNorm: `x / sqrt(mean(x^2) + eps) * weight`). `y` may be `x`.
    @inlinable
    public static func columnNorm(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planeStride ps: Int, channels d: Int,
                                  positions: Range<Int>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, eps: Float, rms: Bool) {
        let w = V.scalarCount, inv = V(repeating: 1 / Float(d))
        var p = positions.lowerBound
        while p < positions.upperBound {
            var mean = V(repeating: 0)
            if !rms {
                var s = V(repeating: 0)
                for c in 0..<d { s += load(x + c * ps + p) }
                mean = s * inv
            }
            var ss = V(repeating: 0)
            for c in 0..<d { let v = load(x + c * ps + p, as: V.self) - mean; ss = M.madd(ss, v, v) }
            let r = V(repeating: 1) / (ss * inv + V(repeating: eps)).squareRoot()
            for c in 0..<d {
                let v = (load(x + c * ps + p, as: V.self) - mean) * r
                store(bias.map { M.madd(V(repeating: $0[c]), v, V(repeating: weight[c])) } ?? v * V(repeating: weight[c]), y + c * ps + p)
            }
            p += w
        }
    }

    /// One key block of an online (blocked) softmax, per query lane in
    /// `positions` (whole vectors): with `t[j] = scale * x[j][q]` over `n`
    /// planes `planeStride` apart, the running maximum `m` becomes `m' =
    /// max(m, max_j t[j])`, `x[j][q]` becomes `exp(t[j] - m')`, `correction`
    /// gets `exp(m - m')` and the running sum `l` becomes `l * correction +
    /// sum_j x[j][q]`. Start with `m = -inf` and `l = 0`.
    @inlinable
    public static func softmaxBlock(_ x: UnsafeMutablePointer<Float>, planeStride ps: Int, planes n: Int, positions: Range<Int>, scale: Float,
                                    runningMax: UnsafeMutablePointer<Float>, runningSum: UnsafeMutablePointer<Float>,
                                    correction: UnsafeMutablePointer<Float>) {
        let w = V.scalarCount, s = V(repeating: scale)
        var q = positions.lowerBound
        while q < positions.upperBound {
            // The block maximum without a comparison: generic SIMD comparisons
            // (and `pointwiseMax`, `replacing`) compile lane by lane once
            // specialized here, so the sign of `t - mx` picks the larger by bit
            // selection (exact for the finite, NaN-free scores; -inf start).
            var mx = V(repeating: -.infinity)
            for j in 0..<n {
                let t: V = load(x + j * ps + q)
                let smaller = unsafeBitCast(t - mx, to: V.MaskStorage.self) &>> 31  // all ones where t < mx
                let a = unsafeBitCast(mx, to: V.MaskStorage.self), b = unsafeBitCast(t, to: V.MaskStorage.self)
                mx = unsafeBitCast(b ^ ((a ^ b) & smaller), to: V.self)
            }
            let old: V = load(runningMax + q), m = pointwiseMax(old, mx * s)
            var sum = V(repeating: 0)
            for j in 0..<n {
                let e = vexp(M.madd(-m, load(x + j * ps + q, as: V.self), s), M.self)
                store(e, x + j * ps + q); sum += e
            }
            let c = vexp(old - m, M.self)
            store(m, runningMax + q); store(c, correction + q)
            store(M.madd(sum, load(runningSum + q, as: V.self), c), runningSum + q)
            q += w
        }
    }

    /// `x[j][q] *= f[q]` (or `/= f[q]` with `divide`) over `n` planes
    /// `planeStride` apart, for the positions in `positions` (whole vectors).
    @inlinable
    public static func scaleColumns(_ x: UnsafeMutablePointer<Float>, planeStride ps: Int, planes n: Int, positions: Range<Int>,
                                    factors f: UnsafePointer<Float>, divide: Bool) {
        let w = V.scalarCount
        var q = positions.lowerBound
        while q < positions.upperBound {
            let v: V = load(f + q), k = divide ? V(repeating: 1) / v : v
            for j in 0..<n { store(load(x + j * ps + q, as: V.self) * k, x + j * ps + q) }
            q += w
        }
    }

    /// One query over `n` keys (the autoregressive step): `out[c] = sum_j
    /// softmax_j(scale * q . k_j) v[c][j]`, with `q[c]` at `q + c * queryStride`,
    /// keys and values in planes `keyStride` apart (`k[c][j]`, contiguous in
    /// `j`, so every loop runs along the keys in full vectors) and `out[c]`
    /// at `out + c * outStride`. `scores` holds `n` rounded up to 16. Every
    /// key's score is the same vector arithmetic whatever its lane, and the
    /// sums over keys run in 16-lane blocks (`Lanes16`), so every vector
    /// width computes the same bits.
    @inlinable
    public static func attendOne(q: UnsafePointer<Float>, queryStride: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, keyStride ks: Int,
                                 keys n: Int, channels c: Int, scale: Float, out: UnsafeMutablePointer<Float>, outStride: Int,
                                 scores: UnsafeMutablePointer<Float>) {
        let w = V.scalarCount, full = n / w * w, padded = (n + 15) / 16 * 16
        // Scores along the keys; a last partial vector reads only its keys.
        var j = 0
        while j < n {
            var acc = V(repeating: 0)
            for ch in 0..<c {
                let kv = j < full ? load(k + ch * ks + j, as: V.self) : tail(k + ch * ks + j, n - j)
                acc = M.madd(acc, V(repeating: q[ch * queryStride]), kv)
            }
            store(acc, scores + j); j += w
        }
        var mx = -Float.infinity
        for i in 0..<n { mx = Swift.max(mx, scores[i]) }
        for i in n..<padded { scores[i] = -Float.infinity }
        // exp(scale * (s - max)); lanes past n become exactly 0.
        let m = V(repeating: mx * scale), sv = V(repeating: scale)
        var sum = Lanes16<V>()
        j = 0
        while j < padded {
            sum.forEachPart { o, a in
                let x = load(scores + j + o, as: V.self)
                let e = V(repeating: 0).replacing(with: vexp(M.madd(-m, x, sv), M.self), where: x .> V(repeating: -Float.infinity))
                store(e, scores + j + o); a += e
            }
            j += 16
        }
        let inv = 1 / sum.sum()
        for ch in 0..<c {
            var acc = Lanes16<V>()
            j = 0
            while j < padded {
                acc.forEachPart { o, a in
                    let i = j + o, vv = i + w <= n ? load(v + ch * ks + i, as: V.self) : tail(v + ch * ks + i, n - i)
                    a = M.madd(a, load(scores + i, as: V.self), vv)
                }
                j += 16
            }
            out[ch * outStride] = acc.sum() * inv
        }
    }

    /// The first `count` floats at `p` in a vector (none for `count <= 0`), zeros after (no read past them).
    @inlinable @inline(__always)
    static func tail(_ p: UnsafePointer<Float>, _ count: Int) -> V {
        var t = V(repeating: 0)
        for i in 0..<Swift.min(Swift.max(0, count), V.scalarCount) { t[i] = p[i] }
        return t
    }
}
