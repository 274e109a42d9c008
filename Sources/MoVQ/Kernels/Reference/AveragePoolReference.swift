/// 2x2 average pooling, stride 2, TensorFlow "same" padding, of `[B, C, H, W]`,
/// reference version: output `ceil(H/2) x ceil(W/2)`; each window sums the
/// pixels that exist in row-major order and divides by their count.
enum AveragePoolReference {
    static func forward(_ x: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let oh = (h + 1) / 2, ow = (w + 1) / 2
        var y = Tensor(zeros: [b, c, oh, ow])
        for plane in 0..<(b * c) {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var sum: Float = 0, n: Float = 0
                    for yy in (2 * oy)..<min(2 * oy + 2, h) {
                        for xx in (2 * ox)..<min(2 * ox + 2, w) { sum += x.data[(plane * h + yy) * w + xx]; n += 1 }
                    }
                    y.data[(plane * oh + oy) * ow + ox] = sum / n
                }
            }
        }
        return y
    }
}
