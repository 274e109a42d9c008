import Foundation

/// Per-channel modulation maps for spatially conditional normalization
/// (SCN): `scale` and `shift` are `conv_y(z_q)` and `conv_b(z_q)` computed at
/// the latent resolution `[B, C, h, w]` and applied with nearest-neighbour
/// mapping to the feature map (1x1 convs commute with nearest upsampling, so
/// this equals the upsample-then-convolve definition exactly).
struct SpatialModulation: Sendable {
    var scale: Tensor
    var shift: Tensor
    init(scale: Tensor, shift: Tensor) { self.scale = scale; self.shift = shift }
}

/// GroupNorm (+ optional SCN modulation, + optional SiLU), reference version.
enum GroupNormReference {
    /// Per-(image, group) mean and 1/sqrt(var + eps), two-pass in Double.
    static func statistics(_ x: Tensor, groups: Int, eps: Float) -> [(mean: Float, invStd: Float)] {
        let b = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3]
        let cpg = c / groups, n = cpg * hw
        var stats = [(mean: Float, invStd: Float)]()
        stats.reserveCapacity(b * groups)
        x.data.withUnsafeBufferPointer { xp in
            for img in 0..<b {
                for g in 0..<groups {
                    let base = xp.baseAddress! + (img * c + g * cpg) * hw
                    var sum = 0.0
                    for i in 0..<n { sum += Double(base[i]) }
                    let mean = sum / Double(n)
                    var sq = 0.0
                    for i in 0..<n { let d = Double(base[i]) - mean; sq += d * d }
                    let v = sq / Double(n)
                    stats.append((Float(mean), Float(1.0 / (v + Double(eps)).squareRoot())))
                }
            }
        }
        return stats
    }

    /// `y = silu?((x - mean) * invStd * gamma + beta) [* scale + shift]`.
    static func forward(
        _ x: Tensor, gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>,
        groups: Int, eps: Float, modulation: SpatialModulation?, silu: Bool, parallelism: Parallelism
    ) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        precondition(c % groups == 0 && gamma.count == c && beta.count == c)
        let stats = statistics(x, groups: groups, eps: eps)
        let cpg = c / groups
        var y = Tensor(zeros: x.shape)
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                let xb = UnsafeSendableBox(xp.baseAddress!), yb = UnsafeSendableBox(yp.baseAddress!)
                parallelism.forEachRange(b * c) { planes in
                    for plane in planes {
                        let img = plane / c, ch = plane % c
                        let st = stats[img * groups + ch / cpg]
                        let a = st.invStd * gamma[ch], off = beta[ch] - st.mean * st.invStd * gamma[ch]
                        let src = xb.value + plane * h * w, dst = yb.value + plane * h * w
                        for i in 0..<(h * w) { dst[i] = src[i] * a + off }
                        if let m = modulation {
                            let mh = m.scale.shape[2], mw = m.scale.shape[3]
                            m.scale.data.withUnsafeBufferPointer { sp in
                                m.shift.data.withUnsafeBufferPointer { tp in
                                    let sb = sp.baseAddress! + plane * mh * mw, tb = tp.baseAddress! + plane * mh * mw
                                    for yy in 0..<h {
                                        let sy = yy * mh / h
                                        for xx in 0..<w {
                                            let sx = xx * mw / w
                                            dst[yy * w + xx] = dst[yy * w + xx] * sb[sy * mw + sx] + tb[sy * mw + sx]
                                        }
                                    }
                                }
                            }
                        }
                        if silu { for i in 0..<(h * w) { dst[i] = siluScalar(dst[i]) } }
                    }
                }
            }
        }
        return y
    }
}

/// `x * sigmoid(x)`.
@inline(__always) func siluScalar(_ x: Float) -> Float { x / (1 + Foundation.exp(-x)) }
