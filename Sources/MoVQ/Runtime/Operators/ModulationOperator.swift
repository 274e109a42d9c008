/// SCN's modulation maps: `scale = conv_y(z_q)` and `shift = conv_b(z_q)`,
/// 1x1 convolutions at the latent resolution (exact: 1x1 convolutions
/// commute with the nearest upsampling the norm applies them with).
///
/// Each output is `bias + w[0] x[0] + w[1] x[1] + ...` with every product
/// and sum rounded separately, in input-channel order: the arithmetic of
/// `Conv2DReference`, so the maps are the reference's bit for bit, while the
/// loop runs vectorized along positions.
struct ModulationOperator: @unchecked Sendable {
    let channels: Int, conditionChannels: Int
    /// `[channels][conditionChannels]` for conv_y then conv_b.
    let weights: (y: [Float], b: [Float])
    let biases: (y: [Float], b: [Float])

    var residentBytes: Int { 2 * (channels * conditionChannels + channels) * 4 }

    /// `condition`: z_q as a feature map; `scale`, `shift`: `[channels][h * w]`.
    func callAsFunction(_ condition: FeatureMap, scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let (h, w) = (condition.height, condition.width)
        ctx.timed("scn modulation \(conditionChannels)->2x\(channels) @\(h)x\(w)", flops: 4 * Double(channels * conditionChannels * h * w)) {
            let cb = UnsafeSendableBox(condition), outs = UnsafeSendableBox((scale, shift))
            let n = h * w, ci = conditionChannels
            weights.y.withUnsafeBufferPointer { wy in weights.b.withUnsafeBufferPointer { wb in
                biases.y.withUnsafeBufferPointer { by in biases.b.withUnsafeBufferPointer { bb in
                    let ws = UnsafeSendableBox((wy, wb, by, bb))
                    ctx.parallelism.forEachRange(2 * channels, minimumChunk: 16) { range in
                        for item in range {
                            let isShift = item >= channels, oc = item % channels
                            let wt = isShift ? ws.value.1 : ws.value.0, bias = (isShift ? ws.value.3 : ws.value.2)[oc]
                            let out = (isShift ? outs.value.1 : outs.value.0) + oc * n
                            for i in 0..<n { out[i] = bias }
                            for ic in 0..<ci {
                                let wv = wt[oc * ci + ic], plane = cb.value.plane(ic)
                                for y in 0..<h {
                                    let row = plane + (y + 1) * cb.value.rowStride + 1, o = out + y * w
                                    for x in 0..<w { o[x] += wv * row[x] }
                                }
                            }
                        }
                    }
                } }
            } }
        }
    }
}
