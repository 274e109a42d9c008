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

    /// Softmax down the planes of each position in `positions` (whole
    /// vectors), in place: `p[j][q] = exp(s (x[j][q] - max_j x[j][q])) / sum`,
    /// for `planes` planes `planeStride` apart (attention scores stored
    /// key-major, so queries run along the vectors).
    @inlinable
    public static func columnSoftmax(_ x: UnsafeMutablePointer<Float>, planeStride ps: Int, planes n: Int, positions: Range<Int>, scale: Float) {
        let w = V.scalarCount, s = V(repeating: scale)
        var q = positions.lowerBound
        while q < positions.upperBound {
            var mx = V(repeating: -.infinity)
            for j in 0..<n { mx = pointwiseMax(mx, load(x + j * ps + q)) }
            let m = mx * s
            var sum = V(repeating: 0)
            for j in 0..<n {
                let e = vexp(M.madd(-m, load(x + j * ps + q, as: V.self), s), M.self)
                store(e, x + j * ps + q); sum += e
            }
            let inv = V(repeating: 1) / sum
            for j in 0..<n { store(load(x + j * ps + q, as: V.self) * inv, x + j * ps + q) }
            q += w
        }
    }
}
