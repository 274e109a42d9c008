/// GroupNorm statistics and the fused normalize + SCN-modulate + SiLU pass on
/// padded feature maps (interior `height x width`, rows `rowStride` apart,
/// first interior pixel at `rowStride + 1`).
public struct NormApplyArgs: @unchecked Sendable {
    public var input: UnsafePointer<Float>
    public var output: UnsafeMutablePointer<Float>
    public var planeStride: Int
    public var rowStride: Int
    public var height: Int
    public var width: Int
    /// Per-channel affine after statistics: `y = x * scale[c] + shift[c]`.
    public var scale: UnsafePointer<Float>
    public var shift: UnsafePointer<Float>
    /// SCN maps `[C][mh][mw]` (conv_y, conv_b of z_q at latent resolution), or nil.
    public var modScale: UnsafePointer<Float>?
    public var modShift: UnsafePointer<Float>?
    public var modHeight: Int
    public var modWidth: Int
    public var silu: Bool
    /// Where these rows sit in the whole map (a band of it): row 0 is
    /// `firstRow` of `totalHeight` (the SCN maps are mapped over the whole map).
    public var firstRow: Int = 0
    public var totalHeight: Int
    /// Floats between output planes (the input's unless set).
    public var outputPlaneStride: Int
    /// The SCN buffers hold rows `modFirstRow ..< modFirstRow + modRows` of
    /// the `modHeight`-row maps (all of them unless set).
    public var modFirstRow: Int = 0
    public var modRows: Int

    public init(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, planeStride: Int, rowStride: Int,
                height: Int, width: Int, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                modScale: UnsafePointer<Float>?, modShift: UnsafePointer<Float>?, modHeight: Int, modWidth: Int, silu: Bool) {
        self.input = input; self.output = output; self.planeStride = planeStride; self.rowStride = rowStride
        self.height = height; self.width = width; self.scale = scale; self.shift = shift
        self.modScale = modScale; self.modShift = modShift; self.modHeight = modHeight; self.modWidth = modWidth; self.silu = silu
        totalHeight = height; outputPlaneStride = planeStride; modRows = modHeight
    }
}

/// Count, mean and sum of squared deviations (`m2`) of a set of values,
/// built row by row: each row's own mean and `m2` (in cache, two passes),
/// merged into the running ones in Double with Chan, Golub and LeVeque's
/// pairwise update. Rows are merged in order, so the statistics of a map
/// are the same whether its rows arrive at once or band by band.
public struct Moments: Sendable, Equatable {
    public var count: Double = 0, mean: Double = 0, m2: Double = 0
    public init() {}

    /// Merges a set of `n` values with mean `mean` and squared deviations `m2`.
    @inlinable
    public mutating func merge(count n: Double, mean mb: Double, m2 qb: Double) {
        guard count > 0 else { count = n; mean = mb; m2 = qb; return }
        let total = count + n, delta = mb - mean
        mean += delta * (n / total)
        m2 += qb + delta * delta * (count * n / total)
        count = total
    }

    /// `m2 / count` (0 for no values).
    public var variance: Double { count > 0 ? m2 / count : 0 }
}

public enum NormKernels<V: SIMD, M: MulAdd> where V.Scalar == Float {
    /// Merges the interior rows of one plane (padded, `height` rows) into
    /// `moments`, row by row (see `Moments`): a row's sum in 16-lane blocks
    /// (`Lanes16`: the same bits at every vector width), its squared
    /// deviations from that mean (rounded to Float) likewise, the rounding of
    /// the centre corrected in Double.
    @inlinable
    public static func accumulateRows(_ p: UnsafePointer<Float>, rowStride: Int, height: Int, width: Int, into moments: inout Moments) {
        let n = Double(width)
        for y in 0..<height {
            let row = p + (y + 1) * rowStride + 1
            var acc = Lanes16<V>()
            var x = 0
            while x + 16 <= width { acc.forEachPart { o, a in a += load(row + x + o, as: V.self) }; x += 16 }
            var tail: Float = 0
            while x < width { tail += row[x]; x += 1 }
            let mean = (Double(acc.sum()) + Double(tail)) / n, centre = Float(mean)
            let cv = V(repeating: centre)
            var sq = Lanes16<V>()
            x = 0
            while x + 16 <= width { sq.forEachPart { o, a in let d = load(row + x + o, as: V.self) - cv; a = M.madd(a, d, d) }; x += 16 }
            var sqTail: Float = 0
            while x < width { let d = row[x] - centre; sqTail += d * d; x += 1 }
            let offset = mean - Double(centre)
            let m2 = max(0, Double(sq.sum()) + Double(sqTail) - n * offset * offset)
            moments.merge(count: n, mean: mean, m2: m2)
        }
    }

    /// Normalizes channels `channels`; `scratch` holds at least `2 * width + 3 * V.scalarCount` floats.
    @inlinable
    public static func apply(_ a: NormApplyArgs, channels: Range<Int>, scratch: UnsafeMutablePointer<Float>) {
        let w = V.scalarCount
        // Expanded SCN rows (each padded by a vector for the tail), then one vector of staging.
        let expandedScale = scratch, expandedShift = scratch + a.width + w
        let tail = scratch + 2 * (a.width + w)
        for c in channels {
            let src = a.input + c * a.planeStride, dst = a.output + c * a.outputPlaneStride
            let sc = V(repeating: a.scale[c]), sh = V(repeating: a.shift[c])
            var lastSy = -1
            for y in 0..<a.height {
                let hasMod = a.modScale != nil
                if hasMod {
                    let sy = (a.firstRow + y) * a.modHeight / a.totalHeight
                    if sy != lastSy {
                        // Nearest-neighbour expansion of the SCN row for this source row.
                        let ms = a.modScale! + (c * a.modRows + sy - a.modFirstRow) * a.modWidth
                        let mt = a.modShift! + (c * a.modRows + sy - a.modFirstRow) * a.modWidth
                        for x in 0..<a.width { let sx = x * a.modWidth / a.width; expandedScale[x] = ms[sx]; expandedShift[x] = mt[sx] }
                        lastSy = sy
                    }
                }
                let rs = src + (y + 1) * a.rowStride + 1, rd = dst + (y + 1) * a.rowStride + 1
                @inline(__always) func step(_ v: V, _ x: Int) -> V {
                    var t = M.madd(sh, v, sc)
                    if hasMod { t = M.madd(load(expandedShift + x, as: V.self), t, load(expandedScale + x, as: V.self)) }
                    if a.silu { t = vsilu(t, M.self) }
                    return t
                }
                var x = 0
                while x + w <= a.width { store(step(load(rs + x), x), rd + x); x += w }
                if x < a.width {
                    let n = a.width - x
                    for i in 0..<w { tail[i] = i < n ? rs[x + i] : 0 }
                    if hasMod { for i in n..<w { expandedScale[x + i] = 0; expandedShift[x + i] = 0 } }
                    store(step(load(tail), x), tail)
                    for i in 0..<n { rd[x + i] = tail[i] }
                }
            }
        }
    }
}
