/// Int16 mode of `Winograd` for int8 models: the 16 (or 9) per-point GEMMs
/// run on integers with exact int32 sums, everything else stays fp32.
///
/// * Weights: int8 `q` with per-output-channel scale `s` (`w ≈ q s`). The
///   transform `U' = (2G) q (2G)^T` is an exact integer (|U'| <= 9 * 127),
///   and `U = G w G^T = U' s / 4`, so no rounding is added on top of int8.
/// * Inputs: each block's transformed input `V[p][i][j]` is quantized per
///   point `p` and tile `j` (dynamic, no calibration): `V ≈ v' * max_i|V| /
///   limit` with `|v'| <= limit`, where `limit` (<= 32767) keeps every sum of
///   `inChannels` products inside int32. That is a relative error of at most
///   `0.5 / limit` of the tile's largest input, far below the int8 weights'.
/// * GEMM: `sum_i U'[o][i] v'[i][j]` with `IntegerDot` (2 channels per 32-bit
///   lane: `vpdpwssd` does 32 multiply-adds per instruction, twice the fp32
///   FMA's 16), then `M = float(sum) * s[o] / 4 * scale[j]`.
///
/// Integer sums are exact and the float steps are the same on every tier, so
/// a block's int16 GEMM results are bit-identical across tiers, and outputs
/// across thread counts.
public struct WinogradInt16Args: @unchecked Sendable {
    /// `WinogradInt16Weights.pack`: `[points][ceil(O/6)][ceil(I/2)][6]`, two Int16 per word.
    public var weights: UnsafePointer<Int32>
    /// `ceil(O/6) * 6` output scales `s[o] / 4` (zero padded).
    public var scales: UnsafePointer<Float>
    /// Largest quantized input magnitude (see above).
    public var limit: Float

    public init(weights: UnsafePointer<Int32>, scales: UnsafePointer<Float>, limit: Float) {
        self.weights = weights; self.scales = scales; self.limit = limit
    }
}

/// Weight transform and packing for the int16 mode.
public enum WinogradInt16Weights {
    /// Packed words, output scales and input limit of one convolution.
    public struct Packed: Sendable {
        public var words: [Int32]
        public var scales: [Float]
        public var limit: Float
    }

    /// int8 OIHW 3x3 weights `q` with per-output-channel `scales` -> `U'`
    /// for the 16 points (or the 9 of upsample mode), two input channels per
    /// word (low half: the even channel), zero padded.
    public static func pack(_ q: [Int8], scales: [Float], outChannels o: Int, inChannels i: Int, upsample: Bool = false) -> Packed {
        precondition(q.count == o * i * 9 && scales.count == o)
        let g2: [[Int]] = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]]  // 2G
        let points = upsample ? WinogradWeights.upsamplePoints : Array(0..<16)
        let groups = (o + 5) / 6
        // U' per point as an [O][I] integer matrix, then packed like any PairGemm weights.
        var u = [[Int32]](repeating: [Int32](repeating: 0, count: o * i), count: points.count)
        var uMax = 0
        for oc in 0..<o {
            for ic in 0..<i {
                let k = (0..<9).map { Int(q[(oc * i + ic) * 9 + $0]) }
                for (slot, p) in points.enumerated() {
                    let (a, b) = (p / 4, p % 4)
                    var s = 0
                    for ky in 0..<3 { for kx in 0..<3 { s += g2[a][ky] * k[ky * 3 + kx] * g2[b][kx] } }
                    uMax = max(uMax, abs(s))
                    u[slot][oc * i + ic] = Int32(s)
                }
            }
        }
        let words = u.flatMap { PairGemmWeights.pack($0, outputs: o, inputs: i) }
        var out = [Float](repeating: 0, count: groups * 6)
        for oc in 0..<o { out[oc] = scales[oc] / 4 }
        let limit = PairGemmWeights.limit(inputs: i, maxWeight: uMax)
        return Packed(words: words, scales: out, limit: limit)
    }
}

extension Winograd {
    /// The int16 GEMMs of one block: for each point, quantize `V[p]` per
    /// tile into pair words and multiply by `U'[p]` (`PairGemm`), storing
    /// `M[p]` as floats for the output transform.
    @inlinable
    static func int16Gemms<D: IntegerDot>(_ a: WinogradArgs, _ q: WinogradInt16Args, v vBase: UnsafeMutablePointer<Float>,
                                       m mBase: UnsafeMutablePointer<Float>, points: Int, t: Int,
                                       words: UnsafeMutablePointer<Int32>, columnScales: UnsafeMutablePointer<Float>,
                                       inverse: UnsafeMutablePointer<Float>, _: D.Type) where D.Floats == V {
        let groups = (a.outChannels + 5) / 6, pairs = (a.inChannels + 1) / 2
        for p in 0..<points {
            PairGemm<V>.quantize(vBase + p * a.inChannels * t, planeStride: t, inputs: a.inChannels, columns: 0..<t, limit: q.limit,
                                 words: words, columnScales: columnScales, inverse: inverse, D.self)
            PairGemm<V>.multiply(words: words, pairs: pairs, columns: 0..<t, weights: q.weights + p * groups * pairs * 6,
                                 rowScales: q.scales, columnScales: columnScales, outputs: a.outChannels,
                                 out: mBase + p * a.outChannels * t, outStride: t, bias: nil, residual: nil, D.self)
        }
    }
}
