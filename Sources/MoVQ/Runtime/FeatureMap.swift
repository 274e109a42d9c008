/// One image's activations as the SIMD operators store them: `channels`
/// planes of `(height + 2) x rowStride` floats (`rowStride = width + 2`)
/// with a zero border, first interior pixel at `rowStride + 1`, plus slack
/// after each plane for the vector kernels' overrun. A view: the memory
/// belongs to the activation arena (or the caller).
///
/// A *band view* (`rows(_:)`, or a window buffer of the banded executor)
/// shows some rows of a taller map: its planes are the taller map's
/// (`planeStride` apart) and its border rows are the neighbouring rows of
/// that map (zero only at the map's own top and bottom).
struct FeatureMap {
    let base: UnsafeMutablePointer<Float>
    let channels: Int, height: Int, width: Int
    /// Floats between planes.
    let planeStride: Int
    /// Floats from the start of each plane's memory to this map's top border row (0 unless a band view).
    let offsetInPlane: Int

    /// A whole map at `base`.
    init(base: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int) {
        self.base = base; self.channels = channels; self.height = height; self.width = width
        planeStride = FeatureMap.planeStride(height: height, width: width); offsetInPlane = 0
    }

    /// A view of `height` rows whose top border row starts `offsetInPlane` floats into planes `planeStride` apart.
    init(base: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int, planeStride: Int, offsetInPlane: Int) {
        self.base = base; self.channels = channels; self.height = height; self.width = width
        self.planeStride = planeStride; self.offsetInPlane = offsetInPlane
    }

    /// The band view of interior rows `rows` (its border rows are rows
    /// `rows.lowerBound - 1` and `rows.upperBound` of this map).
    func rows(_ rows: Range<Int>) -> FeatureMap {
        FeatureMap(base: base + rows.lowerBound * rowStride, channels: channels, height: rows.count, width: width,
                   planeStride: planeStride, offsetInPlane: offsetInPlane + rows.lowerBound * rowStride)
    }

    var rowStride: Int { width + 2 }

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
    /// the convolution writes garbage) for every plane. In a band view the
    /// bottom border row is the next band's first row, not yet written, and
    /// the zeroing stops after the overrun a kernel can write past it.
    func zeroBorders(_ par: Parallelism) {
        let (h, rs, ps) = (height, rowStride, planeStride)
        let tail = min(ps - offsetInPlane - (h + 1) * rs, rs + FeatureMap.slack + 16)
        let b = UnsafeSendableBox(base)
        par.forEachRange(channels, minimumChunk: 16) { range in
            for c in range {
                let p = b.value + c * ps
                for y in 1...h { p[y * rs] = 0; p[y * rs + rs - 1] = 0 }
                (p + (h + 1) * rs).update(repeating: 0, count: tail)
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
