import Foundation

/// `x + proj(softmax(q k^T / sqrt(C)) v)` with q, k, v projections of the
/// normalized map `n`; both `[B, C, H, W]`. Reference version.
enum AttentionReference {
    /// A single-head attention's four `[C, C]` projections (row = output
    /// channel) with biases.
    struct Projections {
        var q: UnsafeBufferPointer<Float>, qBias: UnsafeBufferPointer<Float>
        var k: UnsafeBufferPointer<Float>, kBias: UnsafeBufferPointer<Float>
        var v: UnsafeBufferPointer<Float>, vBias: UnsafeBufferPointer<Float>
        var out: UnsafeBufferPointer<Float>, outBias: UnsafeBufferPointer<Float>
    }

    static func forward(residual x: Tensor, normalized n: Tensor, weights wt: Projections, parallelism: Parallelism) -> Tensor {
        let b = x.shape[0], c = x.shape[1], tokens = x.shape[2] * x.shape[3]
        let scale = 1 / Float(c).squareRoot()
        var y = x
        // Token-major projections [tokens, C] per image.
        var q = [Float](repeating: 0, count: tokens * c), k = q, v = q, o = q
        for img in 0..<b {
            n.data.withUnsafeBufferPointer { np in
                let nb = UnsafeSendableBox(np.baseAddress! + img * c * tokens)
                project(nb.value, tokens: tokens, c: c, w: wt.q, bias: wt.qBias, into: &q, parallelism: parallelism)
                project(nb.value, tokens: tokens, c: c, w: wt.k, bias: wt.kBias, into: &k, parallelism: parallelism)
                project(nb.value, tokens: tokens, c: c, w: wt.v, bias: wt.vBias, into: &v, parallelism: parallelism)
            }
            q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                o.withUnsafeMutableBufferPointer { op in
                    let qb = UnsafeSendableBox(qp), kb = UnsafeSendableBox(kp), vb = UnsafeSendableBox(vp), ob = UnsafeSendableBox(op)
                    parallelism.forEachRange(tokens) { rows in
                        var p = [Float](repeating: 0, count: tokens)
                        for i in rows {
                            var mx = -Float.infinity
                            for j in 0..<tokens {
                                var s: Float = 0
                                for ch in 0..<c { s += qb.value[i * c + ch] * kb.value[j * c + ch] }
                                p[j] = s * scale
                                mx = max(mx, p[j])
                            }
                            var sum: Float = 0
                            for j in 0..<tokens { p[j] = Foundation.exp(p[j] - mx); sum += p[j] }
                            let inv = 1 / sum
                            let orow = ob.value.baseAddress! + i * c
                            for ch in 0..<c { orow[ch] = 0 }
                            for j in 0..<tokens {
                                let pj = p[j] * inv
                                for ch in 0..<c { orow[ch] += pj * vb.value[j * c + ch] }
                            }
                        }
                    }
                }
            } } }
            // Output projection, added to the residual, back to channel-major.
            o.withUnsafeBufferPointer { op in
                y.data.withUnsafeMutableBufferPointer { yp in
                    let ob = UnsafeSendableBox(op), yb = UnsafeSendableBox(yp.baseAddress! + img * c * tokens)
                    parallelism.forEachRange(c) { chans in
                        for oc in chans {
                            for t in 0..<tokens {
                                var s = wt.outBias[oc]
                                for ic in 0..<c { s += wt.out[oc * c + ic] * ob.value[t * c + ic] }
                                yb.value[oc * tokens + t] += s
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// `dst[t, oc] = bias[oc] + sum_ic w[oc, ic] * src[ic, t]`.
    static func project(_ src: UnsafePointer<Float>, tokens: Int, c: Int, w: UnsafeBufferPointer<Float>,
                        bias: UnsafeBufferPointer<Float>, into dst: inout [Float], parallelism: Parallelism) {
        dst.withUnsafeMutableBufferPointer { dp in
            let db = UnsafeSendableBox(dp.baseAddress!), sb = UnsafeSendableBox(src)
            parallelism.forEachRange(tokens) { rows in
                for t in rows {
                    for oc in 0..<c {
                        var s = bias[oc]
                        for ic in 0..<c { s += w[oc * c + ic] * sb.value[ic * tokens + t] }
                        db.value[t * c + oc] = s
                    }
                }
            }
        }
    }
}
