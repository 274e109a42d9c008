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
///
/// **Byte mode** (`WinogradByteWeights`) halves the integer work on VNNI:
/// `U'` is requantized per point and output channel to int8 `u8[p][o][i]`
/// (scale `s[o] / 4 * max_i|U'[p][o][i]| / 127`) and inputs per point and
/// tile to `|v'| <= 127`. VNNI tiers multiply u8 x s8 quads (`vpdpbusd`, the
/// input offset by 128 and the offset's sum `128 * sum_i u8` subtracted
/// exactly); other tiers multiply the same integers as int16 pairs, so the
/// sums, and the outputs, are the same on every tier.
public struct WinogradInt16Args: @unchecked Sendable {
    /// `WinogradInt16Weights.pack`: `[points][ceil(O/6)][ceil(I/2)][6]`, two Int16 per word;
    /// byte mode on quad tiers: `[points][ceil(O/6)][ceil(I/4)][6]`, four Int8 per word.
    public var weights: UnsafePointer<Int32>
    /// `ceil(O/6) * 6` output scales `s[o] / 4` (zero padded); byte mode: `[points][ceil(O/6) * 6]`.
    public var scales: UnsafePointer<Float>
    /// Largest quantized input magnitude (see above; 127 in byte mode).
    public var limit: Float
    /// Floats between the scales of consecutive points (0: one set for all points).
    public var scaleStride: Int
    /// Byte mode on quad tiers: `[points][ceil(O/6) * 6]` zero-point corrections `128 * sum_i u8[p][o][i]`
    /// (the words hold quads and the kernel set's `quadWinograd` runs them); nil: pair words.
    public var offsets: UnsafePointer<Int32>?

    public init(weights: UnsafePointer<Int32>, scales: UnsafePointer<Float>, limit: Float, scaleStride: Int = 0,
                offsets: UnsafePointer<Int32>? = nil) {
        self.weights = weights; self.scales = scales; self.limit = limit; self.scaleStride = scaleStride; self.offsets = offsets
    }

    /// Input channels per packed word.
    @inlinable public var channelsPerWord: Int { offsets != nil ? 4 : 2 }
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
    public static func pack(_ q: UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>, outChannels o: Int, inChannels i: Int,
                            upsample: Bool = false) -> Packed {
        precondition(q.count == o * i * 9 && scales.count == o)
        let points = upsample ? WinogradWeights.upsamplePoints : Array(0..<16)
        let groups = (o + 5) / 6, pairs = (i + 1) / 2, panel = groups * pairs * 6
        // U' = (2G) q (2G)^T for all 16 points at once, separably (integers:
        // exact in any order); the two input channels of a pair go into one
        // PairGemm word per point (low half: the even channel), written once.
        @inline(__always) func g2(_ x: SIMD4<Int32>) -> SIMD4<Int32> {  // (2G) (x0, x1, x2)
            SIMD4(2 &* x[0], x[0] &+ x[1] &+ x[2], x[0] &- x[1] &+ x[2], 2 &* x[2])
        }
        @inline(__always) func transform(_ k: UnsafePointer<Int8>) -> SIMD16<Int32> {
            @inline(__always) func row(_ r: Int) -> SIMD4<Int32> { SIMD4(Int32(k[3 * r]), Int32(k[3 * r + 1]), Int32(k[3 * r + 2]), 0) }
            let (r0, r1, r2) = (row(0), row(1), row(2))
            // Rows a of (2G) q (vectors over kx), then each row times (2G)^T: U'[a][b].
            let t0 = 2 &* r0, t1 = r0 &+ r1 &+ r2, t2 = r0 &- r1 &+ r2, t3 = 2 &* r2
            return SIMD16(lowHalf: SIMD8(lowHalf: g2(t0), highHalf: g2(t1)), highHalf: SIMD8(lowHalf: g2(t2), highHalf: g2(t3)))
        }
        var uMax: Int32 = 0
        // The two transforms go through memory: picking lanes by a run-time index is a spill per lane otherwise.
        let lanes = UnsafeMutablePointer<SIMD16<Int32>>.allocate(capacity: 2)
        defer { lanes.deallocate() }
        let even = UnsafeRawPointer(lanes).assumingMemoryBound(to: Int32.self), odd = even + 16
        // Every word is written once, in order within each point's panel (no zero fill first: this runs at load).
        let words = [Int32](unsafeUninitializedCapacity: points.count * panel) { dst, initialized in
            points.withUnsafeBufferPointer { points in
                for g in 0..<groups {
                    for pair in 0..<pairs {
                        for r in 0..<6 {
                            let oc = g * 6 + r
                            if oc < o {
                                let k = q.baseAddress! + (oc * i + 2 * pair) * 9
                                lanes[0] = transform(k)
                                lanes[1] = 2 * pair + 1 < i ? transform(k + 9) : .zero
                            } else {
                                lanes[0] = .zero; lanes[1] = .zero  // padding rows of the last group
                            }
                            let word = (g * pairs + pair) * 6 + r
                            for slot in 0..<points.count {
                                let (u0, u1) = (even[points[slot]], odd[points[slot]])
                                uMax = max(uMax, abs(u0), abs(u1))
                                dst[slot * panel + word] = Int32(bitPattern: UInt32(UInt16(truncatingIfNeeded: u0)) | UInt32(UInt16(truncatingIfNeeded: u1)) << 16)
                            }
                        }
                    }
                }
            }
            initialized = points.count * panel
        }
        let limit = PairGemmWeights.limit(inputs: i, maxWeight: Int(uMax))
        return Packed(words: words, scales: outputScales(scales), limit: limit)
    }

    /// The GEMM's output scales `s[o] / 4`, zero padded to whole groups of 6.
    public static func outputScales(_ scales: UnsafeBufferPointer<Float>) -> [Float] {
        var out = [Float](repeating: 0, count: (scales.count + 5) / 6 * 6)
        for oc in scales.indices { out[oc] = scales[oc] / 4 }
        return out
    }

    /// The largest `|U'|` in packed words (both halves of each), which sets
    /// the input limit (`PairGemmWeights.limit`).
    public static func largestMagnitude(_ words: UnsafeBufferPointer<Int32>) -> Int32 {
        var m = SIMD16<Int32>.zero
        let base = UnsafeRawPointer(words.baseAddress!)
        let vectors = words.count / 8  // 8 words = 16 halves per step
        for v in 0..<vectors {
            let h = SIMD16<Int32>(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: v * 32, as: SIMD16<Int16>.self))
            m = pointwiseMax(m, pointwiseMax(h, 0 &- h))
        }
        var best = m.max()
        for w in (vectors * 8)..<words.count {
            let x = UInt32(bitPattern: words[w])
            best = max(best, abs(Int32(Int16(truncatingIfNeeded: x))), abs(Int32(Int16(truncatingIfNeeded: x >> 16))))
        }
        return best
    }
}

/// Byte mode of the integer Winograd GEMMs (see `WinogradInt16Args`).
public enum WinogradByteWeights {
    /// The most input channels whose u8 x s8 sums (`255 * 127` per channel) stay inside int32.
    public static let maxInputs = Int(Int32.max) / (255 * 127)

    /// Requantized weights of one convolution: words (quads or pairs), per-point output scales and,
    /// for quads, zero-point corrections.
    public struct Packed: Sendable {
        public var words: [Int32]
        public var scales: [Float]
        public var offsets: [Int32]?
    }

    /// Requantizes the int16-mode pair words `pairWords` (`[points][ceil(O/6)][ceil(I/2)][6]`, the exact
    /// `U'`) with per-output-channel `scales` `s[o] / 4` (`WinogradInt16Weights.outputScales`) to int8 per
    /// point and output channel, packed as quads (`quads`, for `QuadGemm`) or as int16 pairs.
    public static func pack(pairWords: UnsafeBufferPointer<Int32>, scales: UnsafeBufferPointer<Float>, points: Int,
                            outChannels o: Int, inChannels i: Int, quads: Bool) -> Packed {
        let groups = (o + 5) / 6, pairs = (i + 1) / 2, perWord = quads ? 4 : 2, words = (i + perWord - 1) / perWord
        precondition(pairWords.count == points * groups * pairs * 6 && scales.count >= groups * 6)
        let panel = groups * words * 6, stride = groups * 6
        var out = [Int32](repeating: 0, count: points * panel)
        var rowScales = [Float](repeating: 0, count: points * stride)
        var offsets = quads ? [Int32](repeating: 0, count: points * stride) : nil
        var row = [Int32](repeating: 0, count: i)
        for p in 0..<points {
            for oc in 0..<o {
                let (g, r) = oc.quotientAndRemainder(dividingBy: 6)
                var largest: Int32 = 0
                for ic in 0..<i {
                    let word = UInt32(bitPattern: pairWords[((p * groups + g) * pairs + ic / 2) * 6 + r])
                    row[ic] = Int32(Int16(truncatingIfNeeded: ic % 2 == 0 ? word : word >> 16))
                    largest = max(largest, abs(row[ic]))
                }
                rowScales[p * stride + oc] = Float(Double(scales[oc]) * Double(largest) / 127)
                var sum: Int32 = 0
                for ic in 0..<i {
                    let q = largest == 0 ? 0 : Int32((Double(row[ic]) * 127 / Double(largest)).rounded())
                    sum += q
                    let at = p * panel + (g * words + ic / perWord) * 6 + r, shift = UInt32((ic % perWord) * (32 / perWord))
                    let bits = quads ? UInt32(UInt8(truncatingIfNeeded: q)) : UInt32(UInt16(truncatingIfNeeded: q))
                    out[at] |= Int32(bitPattern: bits << shift)
                }
                offsets?[p * stride + oc] = 128 * sum
            }
        }
        return Packed(words: out, scales: rowScales, offsets: offsets)
    }

    /// The pair words (`quads: false` of `pack`) of the same int8 values as quad words `quadWords`
    /// (`[points][ceil(O/6)][ceil(I/4)][6]`), for tiers without a quad dot product.
    public static func pairs(fromQuads quadWords: UnsafeBufferPointer<Int32>, points: Int, outChannels o: Int, inChannels i: Int) -> [Int32] {
        let groups = (o + 5) / 6, quads = (i + 3) / 4, pairs = (i + 1) / 2
        precondition(quadWords.count == points * groups * quads * 6)
        return [Int32](unsafeUninitializedCapacity: points * groups * pairs * 6) { out, initialized in
            for pg in 0..<(points * groups) {
                for pair in 0..<pairs {
                    for r in 0..<6 {
                        let word = UInt32(bitPattern: quadWords[(pg * quads + pair / 2) * 6 + r]) >> UInt32(16 * (pair % 2))
                        let lo = UInt32(UInt16(bitPattern: Int16(Int8(truncatingIfNeeded: word))))
                        let hi = UInt32(UInt16(bitPattern: Int16(Int8(truncatingIfNeeded: word >> 8))))
                        out[(pg * pairs + pair) * 6 + r] = Int32(bitPattern: lo | hi << 16)
                    }
                }
            }
            initialized = points * groups * pairs * 6
        }
    }
}

extension Winograd {
    /// The int16 GEMMs of one block: for each point, quantize `V[p]` per
    /// tile into pair words (byte mode on quad tiers: quad words) and
    /// multiply by `U'[p]` (`PairGemm`), storing `M[p]` as floats for the
    /// output transform.
    @inlinable
    static func int16Gemms<D: IntegerDot>(_ a: WinogradArgs, _ q: WinogradInt16Args, v vBase: UnsafeMutablePointer<Float>,
                                       m mBase: UnsafeMutablePointer<Float>, points: Int, t: Int,
                                       words: UnsafeMutablePointer<Int32>, columnScales: UnsafeMutablePointer<Float>,
                                       inverse: UnsafeMutablePointer<Float>, _: D.Type) where D.Floats == V {
        let groups = (a.outChannels + 5) / 6, perColumn = (a.inChannels + q.channelsPerWord - 1) / q.channelsPerWord
        for p in 0..<points {
            let v = vBase + p * a.inChannels * t
            if q.offsets != nil {
                QuadGemm<V>.quantize(v, planeStride: t, inputs: a.inChannels, columns: 0..<t,
                                     words: words, columnScales: columnScales, inverse: inverse, D.self)
            } else {
                PairGemm<V>.quantize(v, planeStride: t, inputs: a.inChannels, columns: 0..<t, limit: q.limit,
                                     words: words, columnScales: columnScales, inverse: inverse, D.self)
            }
            PairGemm<V>.multiply(words: words, pairs: perColumn, columns: 0..<t, weights: q.weights + p * groups * perColumn * 6,
                                 rowScales: q.scales + p * q.scaleStride, columnScales: columnScales, outputs: a.outChannels,
                                 out: mBase + p * a.outChannels * t, outStride: t, bias: nil, residual: nil,
                                 rowOffsets: q.offsets.map { $0 + p * q.scaleStride }, D.self)
        }
    }
}
