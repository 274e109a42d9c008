/// Winograd F(2x2, 3x3) convolution on padded feature maps (Lavin &
/// Gray, 2016): each 2x2 output tile is `A^T [U ⊙ (B^T d B)] A`, where `d` is
/// the tile's 4x4 input window and `U = G g G^T` the transformed 3x3 kernel.
/// Per tile and channel pair that is 16 multiply-adds instead of 36.
///
/// Tiles are numbered in raster order; a *block* of consecutive tiles is
/// transformed into `V[16][inChannels][T]`, multiplied by `U[16]` with the
/// planar GEMM (`PlanarConv`, one tap: 16 independent `[O x I] x [I x T]`
/// products, each panel small enough to stay in cache), and transformed back
/// into the output with bias and residual. Every output depends only on its
/// own tile, summed in a fixed order, so blocks may run on any thread in any
/// order with bit-identical results.
///
///     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
///     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
///     A^T = [1 1 1 0; 0 1 -1 -1]
///
/// The transforms only add, subtract and halve, so the rounding error stays
/// within a few ulps of the direct sum's (tested against the reference).
///
/// **Upsample mode** computes `conv3x3(nearest2x(x))` without the upsampled
/// copy: the output tile at (2y, 2x) reads upsampled rows 2y-1 ... 2y+2,
/// which are input rows y-1, y, y, y+1 (columns alike). With two equal
/// middle rows, row 2 of `B^T d` is zero, as is column 2 of `d B`, so only
/// 9 of the 16 transform points are nonzero: 9 multiply-adds per input pixel
/// and channel pair (exactly the same arithmetic as Winograd on the
/// upsampled map, minus the products with zero).
public struct WinogradArgs: @unchecked Sendable {
    /// Padded feature-map input: `inChannels` planes, `(height + 2) x rowStride`.
    public var input: UnsafePointer<Float>
    public var inputPlaneStride: Int
    public var rowStride: Int
    public var height: Int, width: Int
    /// `WinogradWeights.pack`: `[16][ceil(O/6)][I][6]`.
    public var weights: UnsafePointer<Float>
    /// At least `ceil(O/6) * 6` zeros (the GEMM starts from them).
    public var zeros: UnsafePointer<Float>
    /// `ceil(O/6) * 6` biases.
    public var bias: UnsafePointer<Float>
    public var inChannels: Int, outChannels: Int
    /// Padded feature-map output: the input's size, or twice it in upsample mode.
    public var output: UnsafeMutablePointer<Float>
    public var outputPlaneStride: Int
    public var outputRowStride: Int
    /// Nearest-2x upsample the input first (see above).
    public var upsample: Bool
    /// Added to the output (same row layout, planes `residualPlaneStride` apart), or nil.
    public var residual: UnsafePointer<Float>?
    public var residualPlaneStride: Int
    /// Int16 mode (`WinogradInt16Args`, for int8 models): integer GEMMs
    /// with these weights instead of the fp32 `weights`.
    public var int16: WinogradInt16Args?

    public init(input: UnsafePointer<Float>, inputPlaneStride: Int, rowStride: Int, height: Int, width: Int,
                weights: UnsafePointer<Float>, zeros: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                inChannels: Int, outChannels: Int, output: UnsafeMutablePointer<Float>, outputPlaneStride: Int,
                outputRowStride: Int, upsample: Bool, residual: UnsafePointer<Float>?, residualPlaneStride: Int? = nil,
                int16: WinogradInt16Args? = nil) {
        self.input = input; self.inputPlaneStride = inputPlaneStride; self.rowStride = rowStride
        self.height = height; self.width = width; self.weights = weights; self.zeros = zeros; self.bias = bias
        self.inChannels = inChannels; self.outChannels = outChannels; self.output = output
        self.outputPlaneStride = outputPlaneStride; self.outputRowStride = outputRowStride
        self.upsample = upsample; self.residual = residual; self.residualPlaneStride = residualPlaneStride ?? outputPlaneStride
        self.int16 = int16
    }

    /// One tile per input pixel in upsample mode, per 2x2 input block otherwise.
    public var tilesX: Int { upsample ? width : (width + 1) / 2 }
    public var tilesY: Int { upsample ? height : (height + 1) / 2 }
    public var outputHeight: Int { upsample ? 2 * height : height }
    public var outputWidth: Int { upsample ? 2 * width : width }
    /// Transform points computed (row-major in the 4x4 grid).
    public var points: [Int] { upsample ? WinogradWeights.upsamplePoints : Array(0..<16) }
    public var tiles: Int { tilesX * tilesY }
}

/// Weight transform and packing for `Winograd`.
public enum WinogradWeights {
    /// The nonzero points in upsample mode: rows and columns 0, 1, 3.
    public static let upsamplePoints = [0, 1, 3, 4, 5, 7, 12, 13, 15]

    /// OIHW 3x3 weights -> `U = G g G^T` (computed in Double, rounded once),
    /// packed per transform point like `PlanarConvWeights` with one tap:
    /// `[points][ceil(O/6)][I][6]`, zero padded, for the 16 points or only
    /// the 9 of upsample mode.
    public static func pack(_ w: UnsafeBufferPointer<Float>, outChannels o: Int, inChannels i: Int, upsample: Bool = false) -> [Float] {
        // Lane p = 4a + b holds U[a][b] = sum over (ky, kx) of (G[a][ky] g[ky][kx]) G[b][kx]:
        // all 16 points of a channel pair at once, each lane summing its terms
        // in the (ky, kx) order of `U = G g G^T` with the same roundings as one
        // point at a time, and no allocation per channel pair (this runs at load).
        let g: [Double] = [1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1]
        var rowG = [SIMD16<Double>](repeating: .zero, count: 3), columnG = rowG
        for p in 0..<16 { for k in 0..<3 { rowG[k][p] = g[(p / 4) * 3 + k]; columnG[k][p] = g[(p % 4) * 3 + k] } }
        let groups = (o + 5) / 6, panel = groups * i * 6
        let points = upsample ? upsamplePoints : Array(0..<16)
        var out = [Float](repeating: 0, count: points.count * panel)
        // The transform goes through memory: picking lanes by a run-time index is a spill per lane otherwise.
        let lanes = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: 1)
        defer { lanes.deallocate() }
        let u = UnsafeRawPointer(lanes).assumingMemoryBound(to: Float.self)
        out.withUnsafeMutableBufferPointer { dst in
            points.withUnsafeBufferPointer { points in
                let (a0, a1, a2, b0, b1, b2) = (rowG[0], rowG[1], rowG[2], columnG[0], columnG[1], columnG[2])
                for oc in 0..<o {
                    for ic in 0..<i {
                        let k = w.baseAddress! + (oc * i + ic) * 9
                        var s = SIMD16<Double>.zero
                        s += a0 * Double(k[0]) * b0; s += a0 * Double(k[1]) * b1; s += a0 * Double(k[2]) * b2
                        s += a1 * Double(k[3]) * b0; s += a1 * Double(k[4]) * b1; s += a1 * Double(k[5]) * b2
                        s += a2 * Double(k[6]) * b0; s += a2 * Double(k[7]) * b1; s += a2 * Double(k[8]) * b2
                        lanes[0] = SIMD16<Float>(s)
                        let at = ((oc / 6) * i + ic) * 6 + oc % 6
                        for slot in 0..<points.count { dst[slot * panel + at] = u[points[slot]] }
                    }
                }
            }
        }
        return out
    }
}

/// Scratch sizes for `Winograd` (independent of the tier).
public enum WinogradScratch {
    /// Floats one worker needs for blocks of `blockTiles` tiles (a multiple
    /// of the tier's GEMM chunk), in fp32 or int16 mode.
    public static func floats(inChannels: Int, outChannels: Int, blockTiles t: Int, rowStride: Int) -> Int {
        16 * (inChannels + outChannels) * t + 4 * lineLength(t) + rowStride + 4 * t + int16Floats(inChannels, t)
    }

    /// One point's pair words plus per-tile scales and inverses (int16 mode).
    @inlinable static func int16Floats(_ inChannels: Int, _ t: Int) -> Int { ((inChannels + 1) / 2 + 2) * t }

    /// One row-transform line: `2t + 2` columns plus a vector of slack.
    @inlinable static func lineLength(_ t: Int) -> Int { 2 * t + 2 + 16 }
}

/// The block pipeline: input transform, 16 GEMMs, output transform.
public enum Winograd<V: SIMD, M: MulAdd> where V.Scalar == Float {
    /// Computes the outputs of tiles `tiles` (raster order, at most
    /// `blockTiles`, which is a multiple of `PlanarConv.chunk`), using
    /// `WinogradScratch.floats(...)` floats of `scratch`; `D` does the int16
    /// mode's multiply-adds.
    @inlinable
    public static func run<D: IntegerDot>(_ a: WinogradArgs, tiles: Range<Int>, blockTiles t: Int, scratch: UnsafeMutablePointer<Float>,
                                       _: D.Type) where D.Floats == V {
        let n = tiles.count
        precondition(n <= t && t % PlanarConv<V, M>.chunk == 0)
        let lineLength = WinogradScratch.lineLength(t)
        let points = a.upsample ? 9 : 16
        let vBase = scratch, mBase = vBase + points * a.inChannels * t
        let lines = mBase + points * a.outChannels * t
        let zeroRow = lines + 4 * lineLength
        zeroRow.update(repeating: 0, count: a.rowStride)
        let ys = zeroRow + a.rowStride

        // Input transform, one channel at a time, one tile-row segment at a time.
        for c in 0..<a.inChannels {
            let plane = a.input + c * a.inputPlaneStride
            let v = vBase + c * t
            forEachSegment(a, tiles) { ty, tx0, count, j0 in
                if a.upsample {
                    transformUpsampledInput(a, plane: plane, ty: ty, tx0: tx0, count: count,
                                            lines: lines, lineLength: lineLength, v: v + j0, pointStride: a.inChannels * t)
                } else {
                    transformInput(a, plane: plane, ty: ty, tx0: tx0, count: count,
                                   lines: lines, lineLength: lineLength, zeroRow: zeroRow,
                                   v: v + j0, pointStride: a.inChannels * t)
                }
            }
            // Tail of the block's last chunk: finite values, never stored.
            for p in 0..<points { (v + p * a.inChannels * t + n).update(repeating: 0, count: t - n) }
        }

        // Independent GEMMs, one per point: M[p] = U[p] x V[p].
        let groups = (a.outChannels + 5) / 6
        let chunks = t / PlanarConv<V, M>.chunk
        if let q = a.int16 {
            let extra = ys + 4 * t, words = UnsafeMutableRawPointer(extra).bindMemory(to: Int32.self, capacity: (a.inChannels + 1) / 2 * t)
            let scales = extra + (a.inChannels + 1) / 2 * t
            int16Gemms(a, q, v: vBase, m: mBase, points: points, t: t, words: words, columnScales: scales, inverse: scales + t, D.self)
        } else { for p in 0..<points {
            let g = PlanarConvArgs(
                input: vBase + p * a.inChannels * t, inputPlaneStride: t, rowStride: t, kernel: 1, tapOrigin: 0,
                weights: a.weights + p * groups * a.inChannels * 6, bias: a.zeros,
                inChannels: a.inChannels, outChannels: a.outChannels,
                output: mBase + p * a.outChannels * t, outputPlaneStride: t, outputShift: 0,
                residual: nil, positions: n)
            PlanarConv<V, M>.run(g, groups: 0..<groups, chunks: 0..<chunks, inputs: 0..<a.inChannels)
        } }

        // Output transform, one channel at a time.
        for o in 0..<a.outChannels {
            let m = mBase + o * t, ps = a.outChannels * t
            if a.upsample {
                transformUpsampledOutput(m: m, pointStride: ps, count: n, bias: a.bias[o], ys: ys, t: t)
            } else {
                transformOutput(m: m, pointStride: ps, count: n, bias: a.bias[o], ys: ys, t: t)
            }
            let plane = a.output + o * a.outputPlaneStride
            let res = a.residual.map { $0 + o * a.residualPlaneStride }
            forEachSegment(a, tiles) { ty, tx0, count, j0 in
                scatter(a, plane: plane, residual: res, ty: ty, tx0: tx0, count: count, ys: ys + j0, t: t)
            }
        }
    }

    /// Splits a raster range of tiles into runs within one tile row:
    /// `(tile row, first tile column, run length, offset in the block)`.
    @inlinable @inline(__always)
    static func forEachSegment(_ a: WinogradArgs, _ tiles: Range<Int>, _ body: (Int, Int, Int, Int) -> Void) {
        let tx = a.tilesX
        var i = tiles.lowerBound
        while i < tiles.upperBound {
            let ty = i / tx, x0 = i % tx, count = min(tiles.upperBound - i, tx - x0)
            body(ty, x0, count, i - tiles.lowerBound)
            i += count
        }
    }

    /// `B^T d B` for `count` tiles of one tile row of one channel, stored at
    /// `v[p * pointStride + j]` for transform point `p` and tile `j`.
    @inlinable
    static func transformInput(_ a: WinogradArgs, plane: UnsafePointer<Float>, ty: Int, tx0: Int, count: Int,
                               lines: UnsafeMutablePointer<Float>, lineLength: Int, zeroRow: UnsafePointer<Float>,
                               v: UnsafeMutablePointer<Float>, pointStride: Int) {
        let w = V.scalarCount, rs = a.rowStride
        // Window rows are padded rows 2ty ..< 2ty + 4; past the bottom border (odd heights) they are zero.
        @inline(__always) func row(_ r: Int) -> UnsafePointer<Float> {
            2 * ty + r <= a.height + 1 ? plane + (2 * ty + r) * rs + 2 * tx0 : zeroRow
        }
        let d0 = row(0), d1 = row(1), d2 = row(2), d3 = row(3)
        // Columns 2tx0 ..< 2tx0 + 2count + 2, clipped at the row's end (odd widths).
        let cols = 2 * count + 2, inside = min(cols, rs - 2 * tx0)
        let t0 = lines, t1 = lines + lineLength, t2 = t1 + lineLength, t3 = t2 + lineLength
        // Row transform B^T d, vectorized along the row.
        var x = 0
        while x + w <= inside {
            let r0: V = load(d0 + x), r1: V = load(d1 + x), r2: V = load(d2 + x), r3: V = load(d3 + x)
            store(r0 - r2, t0 + x); store(r1 + r2, t1 + x); store(r2 - r1, t2 + x); store(r1 - r3, t3 + x)
            x += w
        }
        while x < inside {
            t0[x] = d0[x] - d2[x]; t1[x] = d1[x] + d2[x]; t2[x] = d2[x] - d1[x]; t3[x] = d1[x] - d3[x]
            x += 1
        }
        while x < cols { t0[x] = 0; t1[x] = 0; t2[x] = 0; t3[x] = 0; x += 1 }
        // Column transform (.. B): tile j uses columns 2j ..< 2j + 4.
        @inline(__always) func columns(_ line: UnsafePointer<Float>, _ r: Int) {
            let o0 = v + (4 * r) * pointStride, o1 = o0 + pointStride, o2 = o1 + pointStride, o3 = o2 + pointStride
            for j in 0..<count {
                let c0 = line[2 * j], c1 = line[2 * j + 1], c2 = line[2 * j + 2], c3 = line[2 * j + 3]
                o0[j] = c0 - c2; o1[j] = c1 + c2; o2[j] = c2 - c1; o3[j] = c1 - c3
            }
        }
        columns(t0, 0); columns(t1, 1); columns(t2, 2); columns(t3, 3)
    }

    /// `A^T m A + bias` for `count` tiles of one output channel: the four
    /// outputs of tile j go to `ys[k * t + j]`, k = 2 * row + column.
    @inlinable
    static func transformOutput(m: UnsafePointer<Float>, pointStride ps: Int, count: Int, bias: Float,
                                ys: UnsafeMutablePointer<Float>, t: Int) {
        let w = V.scalarCount, b = V(repeating: bias)
        var j = 0
        // `t` is a whole number of chunks, so full vectors cover every tile.
        while j < count {
            let p = m + j
            @inline(__always) func at(_ i: Int) -> V { load(p + i * ps) }
            // Rows: s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 (for each column).
            let m4 = at(4), m5 = at(5), m6 = at(6), m7 = at(7), m8 = at(8), m9 = at(9), m10 = at(10), m11 = at(11)
            let s00 = at(0) + m4 + m8, s01 = at(1) + m5 + m9, s02 = at(2) + m6 + m10, s03 = at(3) + m7 + m11
            let s10 = m4 - m8 - at(12), s11 = m5 - m9 - at(13), s12 = m6 - m10 - at(14), s13 = m7 - m11 - at(15)
            store(s00 + s01 + s02 + b, ys + j); store(s01 - s02 - s03 + b, ys + t + j)
            store(s10 + s11 + s12 + b, ys + 2 * t + j); store(s11 - s12 - s13 + b, ys + 3 * t + j)
            j += w
        }
    }

    /// Upsample mode's input transform: tile j of the segment is input pixel
    /// (ty, tx0 + j); its 4x4 upsampled window has rows (y-1, y, y, y+1), so
    /// `B^T d` has rows (r0 - r1, 2 r1, 0, r1 - r2), and the same for columns.
    /// Points are stored in `WinogradWeights.upsamplePoints` order.
    @inlinable
    static func transformUpsampledInput(_ a: WinogradArgs, plane: UnsafePointer<Float>, ty: Int, tx0: Int, count: Int,
                                        lines: UnsafeMutablePointer<Float>, lineLength: Int,
                                        v: UnsafeMutablePointer<Float>, pointStride: Int) {
        let w = V.scalarCount, rs = a.rowStride
        // Padded rows ty ..< ty + 3 and columns tx0 ..< tx0 + count + 2 always lie inside the plane.
        let d0 = plane + ty * rs + tx0, d1 = d0 + rs, d2 = d1 + rs
        let cols = count + 2
        let t0 = lines, t1 = lines + lineLength, t3 = t1 + lineLength
        var x = 0
        while x + w <= cols {
            let r0: V = load(d0 + x), r1: V = load(d1 + x), r2: V = load(d2 + x)
            store(r0 - r1, t0 + x); store(r1 + r1, t1 + x); store(r1 - r2, t3 + x)
            x += w
        }
        while x < cols { t0[x] = d0[x] - d1[x]; t1[x] = d1[x] + d1[x]; t3[x] = d1[x] - d2[x]; x += 1 }
        @inline(__always) func columns(_ line: UnsafePointer<Float>, _ slot: Int) {
            let o0 = v + slot * pointStride, o1 = o0 + pointStride, o3 = o1 + pointStride
            var j = 0
            while j + w <= count {
                let c0: V = load(line + j), c1: V = load(line + j + 1), c2: V = load(line + j + 2)
                store(c0 - c1, o0 + j); store(c1 + c1, o1 + j); store(c1 - c2, o3 + j)
                j += w
            }
            while j < count {
                let c0 = line[j], c1 = line[j + 1], c2 = line[j + 2]
                o0[j] = c0 - c1; o1[j] = c1 + c1; o3[j] = c1 - c2
                j += 1
            }
        }
        columns(t0, 0); columns(t1, 3); columns(t3, 6)
    }

    /// Upsample mode's `A^T m A + bias` over the 9 nonzero points.
    @inlinable
    static func transformUpsampledOutput(m: UnsafePointer<Float>, pointStride ps: Int, count: Int, bias: Float,
                                         ys: UnsafeMutablePointer<Float>, t: Int) {
        let w = V.scalarCount, b = V(repeating: bias)
        var j = 0
        while j < count {
            let p = m + j
            @inline(__always) func at(_ i: Int) -> V { load(p + i * ps) }
            // Slots: 0..2 = row 0 (columns 0, 1, 3), 3..5 = row 1, 6..8 = row 3.
            let m10 = at(3), m11 = at(4), m13 = at(5)
            let s00 = at(0) + m10, s01 = at(1) + m11, s03 = at(2) + m13
            let s10 = m10 - at(6), s11 = m11 - at(7), s13 = m13 - at(8)
            store(s00 + s01 + b, ys + j); store(s01 - s03 + b, ys + t + j)
            store(s10 + s11 + b, ys + 2 * t + j); store(s11 - s13 + b, ys + 3 * t + j)
            j += w
        }
    }

    /// Writes one tile row segment's outputs into the output plane (clipped
    /// at odd edges), adding the residual.
    @inlinable
    static func scatter(_ a: WinogradArgs, plane: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?,
                        ty: Int, tx0: Int, count: Int, ys: UnsafePointer<Float>, t: Int) {
        let rs = a.outputRowStride
        for r in 0..<2 where 2 * ty + r < a.outputHeight {
            let off = (2 * ty + r + 1) * rs + 1 + 2 * tx0
            let dst = plane + off, left = ys + 2 * r * t, right = left + t
            let full = min(count, (a.outputWidth - 2 * tx0) / 2)  // tiles whose both columns are inside
            if let res = residual.map({ $0 + off }) {
                for j in 0..<full { dst[2 * j] = left[j] + res[2 * j]; dst[2 * j + 1] = right[j] + res[2 * j + 1] }
                if full < count { dst[2 * full] = left[full] + res[2 * full] }
            } else {
                for j in 0..<full { dst[2 * j] = left[j]; dst[2 * j + 1] = right[j] }
                if full < count { dst[2 * full] = left[full] }
            }
        }
    }
}
