/// 2x2 average pooling, stride 2, TensorFlow "same" padding (the official
/// MaskGIT tokenizer's downsampling) on feature maps: the same arithmetic
/// as `AveragePoolReference` (row-major sum of the pixels that exist, divided
/// by their count), so outputs are bit-identical to it. Memory-bound;
/// channels are split over threads.
struct AveragePoolOperator: Sendable {
    /// `output` (`ceil(h/2) x ceil(w/2)`) from `input`.
    func callAsFunction(_ input: FeatureMap, into output: FeatureMap, _ ctx: ExecutionContext) {
        ctx.timed("average pool 2x2 \(input.channels) @\(input.height)x\(input.width)", flops: 0) {
            let ib = UnsafeSendableBox(input), ob = UnsafeSendableBox(output)
            let (h, w, oh, ow) = (input.height, input.width, output.height, output.width)
            ctx.parallelism.forEachRange(input.channels, minimumChunk: 4) { r in
                for ch in r {
                    let s = ib.value.plane(ch), d = ob.value.plane(ch)
                    let (srs, drs) = (ib.value.rowStride, ob.value.rowStride)
                    for oy in 0..<oh {
                        let top = s + (2 * oy + 1) * srs + 1, row = d + (oy + 1) * drs + 1
                        if 2 * oy + 1 < h {
                            let bottom = top + srs
                            for ox in 0..<(w / 2) { row[ox] = (top[2 * ox] + top[2 * ox + 1] + bottom[2 * ox] + bottom[2 * ox + 1]) / 4 }
                            if w % 2 == 1 { row[ow - 1] = (top[w - 1] + bottom[w - 1]) / 2 }
                        } else {
                            for ox in 0..<(w / 2) { row[ox] = (top[2 * ox] + top[2 * ox + 1]) / 2 }
                            if w % 2 == 1 { row[ow - 1] = top[w - 1] }
                        }
                    }
                }
            }
        }
    }
}
