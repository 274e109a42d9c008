/// One image's activations as the SIMD operators store them: `channels`
/// planes of `(height + 2) x rowStride` floats (`rowStride = width + 2`)
/// with a zero border, first interior pixel at `rowStride + 1`, plus slack
/// after each plane for the vector kernels' overrun. A view: the memory
/// belongs to the activation arena (or the caller).
struct FeatureMap {
    let base: UnsafeMutablePointer<Float>
    let channels: Int, height: Int, width: Int

    var rowStride: Int { width + 2 }
    var planeStride: Int { FeatureMap.planeStride(height: height, width: width) }

    static let slack = 128
    static func planeStride(height: Int, width: Int) -> Int { ((height + 2) * (width + 2) + slack + 15) / 16 * 16 }
    static func floats(channels: Int, height: Int, width: Int) -> Int { channels * planeStride(height: height, width: width) }

    func plane(_ c: Int) -> UnsafeMutablePointer<Float> { base + c * planeStride }

    /// Zeroes every border (top and bottom rows, side columns) and the
    /// slack; the interior is left as it is.
    func zeroAllBorders() {
        for c in 0..<channels { plane(c).update(repeating: 0, count: rowStride) }
        zeroBorders(Parallelism(threads: 1))
    }

    /// Zeroes the border columns, the bottom border row and the slack (where
    /// the convolution writes garbage) for every plane.
    func zeroBorders(_ par: Parallelism) {
        let (h, rs, ps) = (height, rowStride, planeStride)
        let b = UnsafeSendableBox(base)
        par.forEachRange(channels, minimumChunk: 16) { range in
            for c in range {
                let p = b.value + c * ps
                for y in 1...h { p[y * rs] = 0; p[y * rs + rs - 1] = 0 }
                (p + (h + 1) * rs).update(repeating: 0, count: ps - (h + 1) * rs)
            }
        }
    }

    /// Copies image `index` of an NCHW tensor into the interior.
    func load(_ t: Tensor, image index: Int) {
        let (c, h, w) = (t.shape[1], t.shape[2], t.shape[3])
        t.data.withUnsafeBufferPointer { p in
            for ch in 0..<c {
                for y in 0..<h { (plane(ch) + (y + 1) * rowStride + 1).update(from: p.baseAddress! + ((index * c + ch) * h + y) * w, count: w) }
            }
        }
    }

    /// The interior as a `[1, C, H, W]` tensor.
    func tensor() -> Tensor {
        var t = Tensor(zeros: [1, channels, height, width])
        t.data.withUnsafeMutableBufferPointer { p in
            for c in 0..<channels {
                for y in 0..<height { (p.baseAddress! + (c * height + y) * width).update(from: plane(c) + (y + 1) * rowStride + 1, count: width) }
            }
        }
        return t
    }
}
