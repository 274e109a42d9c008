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
/// * GEMM: `sum_i U'[o][i] v'[i][j]` with `PairDot` (2 channels per 32-bit
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
        let groups = (o + 5) / 6, pairs = (i + 1) / 2, panel = groups * pairs * 6
        var words = [Int32](repeating: 0, count: points.count * panel)
        var uMax = 0
        for oc in 0..<o {
            for ic in 0..<i {
                let k = (0..<9).map { Int(q[(oc * i + ic) * 9 + $0]) }
                for (slot, p) in points.enumerated() {
                    let (a, b) = (p / 4, p % 4)
                    var s = 0
                    for ky in 0..<3 { for kx in 0..<3 { s += g2[a][ky] * k[ky * 3 + kx] * g2[b][kx] } }
                    uMax = max(uMax, abs(s))
                    let at = slot * panel + ((oc / 6) * pairs + ic / 2) * 6 + oc % 6
                    let half = UInt32(UInt16(truncatingIfNeeded: s))
                    words[at] |= Int32(bitPattern: ic % 2 == 0 ? half : half << 16)
                }
            }
        }
        var out = [Float](repeating: 0, count: groups * 6)
        for oc in 0..<o { out[oc] = scales[oc] / 4 }
        // sum over 2 * pairs channels of |U'| * limit must stay below 2^31.
        let limit = uMax == 0 ? 32767 : min(32767, Double(Int32.max) / Double(2 * pairs * uMax)).rounded(.down)
        return Packed(words: words, scales: out, limit: Float(limit))
    }
}

extension Winograd {
    /// The int16 GEMMs of one block: for each point, quantize `V[p]` per
    /// tile into pair words, multiply by `U'[p]` with `D`, and store
    /// `M[p]` as floats for the output transform.
    @inlinable
    static func int16Gemms<D: PairDot>(_ a: WinogradArgs, _ q: WinogradInt16Args, v vBase: UnsafeMutablePointer<Float>,
                                       m mBase: UnsafeMutablePointer<Float>, points: Int, t: Int,
                                       words: UnsafeMutablePointer<Int32>, columnScales: UnsafeMutablePointer<Float>,
                                       inverse: UnsafeMutablePointer<Float>, _: D.Type) where D.Floats == V {
        let w = V.scalarCount, inputs = a.inChannels, pairs = (inputs + 1) / 2
        let groups = (a.outChannels + 5) / 6, limit = V(repeating: q.limit)
        for p in 0..<points {
            let v = vBase + p * inputs * t
            // Per tile: the largest |V| over input channels sets its scale.
            var j = 0
            while j < t {
                // |x| as bits: for non-negative floats integer order is float order.
                var bits = D.Lanes(repeating: 0x0DA2_4260)  // 1e-30: an all-zero tile gets a finite inverse and scale ~0
                for i in 0..<inputs {
                    let x: V = load(v + i * t + j)
                    bits = D.max(bits, unsafeBitCast(x, to: D.Lanes.self) & 0x7FFF_FFFF)
                }
                let mx = unsafeBitCast(bits, to: V.self)
                store(limit / mx, inverse + j)
                store(mx / limit, columnScales + j)
                j += w
            }
            // Round to nearest (magic-number trick, exact for |x| < 2^22) and pack channel pairs.
            @inline(__always) func rounded(_ x: V) -> D.Lanes {
                unsafeBitCast(x + V(repeating: 12_582_912), to: D.Lanes.self) &- 0x4B40_0000
            }
            for k in 0..<pairs {
                let r0 = v + 2 * k * t, has1 = 2 * k + 1 < inputs
                var j = 0
                while j < t {
                    let inv: V = load(inverse + j)
                    let lo = rounded(load(r0 + j) * inv)
                    let hi = has1 ? rounded(load(r0 + t + j) * inv) : D.Lanes(repeating: 0)
                    UnsafeMutableRawPointer(words + k * t + j).storeBytes(of: (lo & 0xFFFF) | (hi &<< 16), as: D.Lanes.self)
                    j += w
                }
            }
            // GEMM: 6 output channels x 2 vectors of tiles per register tile.
            let uw = q.weights + p * groups * pairs * 6
            let out = mBase + p * a.outChannels * t
            for g in 0..<groups {
                let rows = min(6, a.outChannels - g * 6)
                let wg = uw + g * pairs * 6
                var c = 0
                while c < t {
                    let z = D.Lanes(repeating: 0)
                    var c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z
                    var src = UnsafeRawPointer(words + c), wp = wg
                    for _ in 0..<pairs {
                        let x0 = src.loadUnaligned(as: D.Lanes.self), x1 = src.loadUnaligned(fromByteOffset: 4 * w, as: D.Lanes.self)
                        var s = D.Lanes(repeating: wp[0]); c00 = D.dot(c00, x0, s); c01 = D.dot(c01, x1, s)
                        s = D.Lanes(repeating: wp[1]); c10 = D.dot(c10, x0, s); c11 = D.dot(c11, x1, s)
                        s = D.Lanes(repeating: wp[2]); c20 = D.dot(c20, x0, s); c21 = D.dot(c21, x1, s)
                        s = D.Lanes(repeating: wp[3]); c30 = D.dot(c30, x0, s); c31 = D.dot(c31, x1, s)
                        s = D.Lanes(repeating: wp[4]); c40 = D.dot(c40, x0, s); c41 = D.dot(c41, x1, s)
                        s = D.Lanes(repeating: wp[5]); c50 = D.dot(c50, x0, s); c51 = D.dot(c51, x1, s)
                        src += 4 * t; wp += 6
                    }
                    let cs0: V = load(columnScales + c), cs1: V = load(columnScales + c + w)
                    @inline(__always) func put(_ r: Int, _ a0: D.Lanes, _ a1: D.Lanes) {
                        guard r < rows else { return }
                        let o = g * 6 + r, s = V(repeating: q.scales[o]), dst = out + o * t + c
                        store(D.float(a0) * s * cs0, dst); store(D.float(a1) * s * cs1, dst + w)
                    }
                    put(0, c00, c01); put(1, c10, c11); put(2, c20, c21)
                    put(3, c30, c31); put(4, c40, c41); put(5, c50, c51)
                    c += 2 * w
                }
            }
        }
    }
}
