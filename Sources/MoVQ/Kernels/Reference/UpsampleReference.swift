/// Nearest-neighbour 2x upsampling of `[B, C, H, W]`, reference version.
enum UpsampleReference {
    static func nearest2x(_ x: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        var y = Tensor(zeros: [b, c, 2 * h, 2 * w])
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                for plane in 0..<(b * c) {
                    let src = xp.baseAddress! + plane * h * w, dst = yp.baseAddress! + plane * 4 * h * w
                    for yy in 0..<(2 * h) {
                        for xx in 0..<(2 * w) { dst[yy * 2 * w + xx] = src[(yy / 2) * w + xx / 2] }
                    }
                }
            }
        }
        return y
    }
}
