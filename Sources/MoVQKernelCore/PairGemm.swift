/// Integer GEMM on int16 pairs with per-column dynamic input quantization,
/// the core of the int16 modes (Winograd points, transformer linears):
///
///     y[o][j] = float(sum_i W'[o][i] x'[i][j]) * rowScale[o] * columnScale[j] (+ bias[o]) (+ residual[o][j])
///
/// where `x' = round(x * limit / max_i |x[i][j]|)` per column `j` (so
/// `|x'| <= limit`) and `W'` are integer weights packed two input channels per
/// 32-bit word, `[ceil(O/6)][ceil(I/2)][6]` (`PairGemmWeights`). Sums are
/// exact int32 when `I * limit * max|W'| < 2^31`.
public enum PairGemm<V: SIMD> where V.Scalar == Float {
    /// Quantizes columns `columns` (whole vectors) of `x` (`inputs` planes
    /// `planeStride` apart) into pair words (`words[k * wordStride + j]`,
    /// `wordStride` = `planeStride`) and per-column scales `max|x| / limit`.
    /// `inverse` is scratch indexed like the columns.
    @inlinable
    public static func quantize<D: IntegerDot>(_ x: UnsafePointer<Float>, planeStride t: Int, inputs: Int, columns: Range<Int>, limit l: Float,
                                            words: UnsafeMutablePointer<Int32>, columnScales: UnsafeMutablePointer<Float>,
                                            inverse: UnsafeMutablePointer<Float>, _: D.Type) where D.Floats == V {
        let w = V.scalarCount, pairs = (inputs + 1) / 2
        scaleColumns(x, planeStride: t, inputs: inputs, columns: columns, limit: l, columnScales: columnScales, inverse: inverse, D.self)
        // Round to nearest (magic-number trick, exact for |x| < 2^22) and pack channel pairs.
        @inline(__always) func rounded(_ v: V) -> D.Lanes {
            unsafeBitCast(v + V(repeating: 12_582_912), to: D.Lanes.self) &- 0x4B40_0000
        }
        for k in 0..<pairs {
            let r0 = x + 2 * k * t, has1 = 2 * k + 1 < inputs
            var j = columns.lowerBound
            while j < columns.upperBound {
                let inv: V = load(inverse + j)
                let lo = rounded(load(r0 + j) * inv)
                let hi = has1 ? rounded(load(r0 + t + j) * inv) : D.Lanes(repeating: 0)
                UnsafeMutableRawPointer(words + k * t + j).storeBytes(of: (lo & 0xFFFF) | (hi &<< 16), as: D.Lanes.self)
                j += w
            }
        }
    }

    /// Per column `j` of `columns` (whole vectors): `columnScales[j] =
    /// max_i |x[i][j]| / limit` and `inverse[j] = limit / max_i |x[i][j]|`
    /// (the max is at least 1e-30, so an all-zero column stays finite).
    @inlinable
    public static func scaleColumns<D: IntegerDot>(_ x: UnsafePointer<Float>, planeStride t: Int, inputs: Int, columns: Range<Int>, limit l: Float,
                                                columnScales: UnsafeMutablePointer<Float>, inverse: UnsafeMutablePointer<Float>,
                                                _: D.Type) where D.Floats == V {
        let limit = V(repeating: l)
        var j = columns.lowerBound
        while j < columns.upperBound {
            // |x| as bits: for non-negative floats integer order is float order
            // (`pointwiseMax` would go lane by lane).
            var bits = D.Lanes(repeating: 0x0DA2_4260)  // 1e-30
            for i in 0..<inputs {
                let v: V = load(x + i * t + j)
                bits = D.max(bits, unsafeBitCast(v, to: D.Lanes.self) & 0x7FFF_FFFF)
            }
            let mx = unsafeBitCast(bits, to: V.self)
            store(limit / mx, inverse + j)
            store(mx / limit, columnScales + j)
            j += V.scalarCount
        }
    }

    /// The GEMM over columns `columns` (whole chunks of `2 * lanes`): 6
    /// output channels x 2 vectors per register tile. Output (and residual)
    /// planes are `outStride` apart, word planes `wordStride` (default: the
    /// same). `pairs` counts words per column; with a quad `D` (`QuadGemm`)
    /// they hold 4 channels and `rowOffsets` removes the zero point.
    @inlinable
    public static func multiply<D: IntegerDot>(words: UnsafePointer<Int32>, pairs: Int, columns: Range<Int>, weights: UnsafePointer<Int32>,
                                            rowScales: UnsafePointer<Float>, columnScales: UnsafePointer<Float>, outputs: Int,
                                            out: UnsafeMutablePointer<Float>, outStride: Int, bias: UnsafePointer<Float>?,
                                            residual: UnsafePointer<Float>?, wordStride: Int? = nil,
                                            rowOffsets: UnsafePointer<Int32>? = nil, _: D.Type) where D.Floats == V {
        let w = V.scalarCount, groups = (outputs + 5) / 6, ws = wordStride ?? outStride
        // Column blocks of two register tiles, so the block's words stay in L2 while every group reuses them.
        var blockStart = columns.lowerBound
        while blockStart < columns.upperBound {
        let blockEnd = min(columns.upperBound, blockStart + 4 * w)
        for g in 0..<groups {
            let rows = min(6, outputs - g * 6)
            let wg = weights + g * pairs * 6
            var c = blockStart
            while c < blockEnd {
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
                    src += 4 * ws; wp += 6
                }
                let cs0: V = load(columnScales + c), cs1: V = load(columnScales + c + w)
                @inline(__always) func put(_ r: Int, _ b0: D.Lanes, _ b1: D.Lanes) {
                    guard r < rows else { return }
                    let o = g * 6 + r, s = V(repeating: rowScales[o]), dst = out + o * outStride + c
                    var a0 = b0, a1 = b1
                    if let rowOffsets { let z = D.Lanes(repeating: rowOffsets[o]); a0 &-= z; a1 &-= z }
                    var y0 = D.float(a0) * s * cs0, y1 = D.float(a1) * s * cs1
                    if let bias { let b = V(repeating: bias[o]); y0 += b; y1 += b }
                    if let residual { y0 += load(residual + o * outStride + c); y1 += load(residual + o * outStride + c + w) }
                    store(y0, dst); store(y1, dst + w)
                }
                put(0, c00, c01); put(1, c10, c11); put(2, c20, c21)
                put(3, c30, c31); put(4, c40, c41); put(5, c50, c51)
                c += 2 * w
            }
        }
        blockStart = blockEnd
        }
    }
}

/// Packing of integer weights for `PairGemm`.
public enum PairGemmWeights {
    /// `[O][I]` integers (int16 range) -> `[ceil(O/6)][ceil(I/2)][6]` words, zero padded.
    public static func pack(_ q: [Int32], outputs o: Int, inputs i: Int) -> [Int32] {
        let pairs = (i + 1) / 2
        var words = [Int32](repeating: 0, count: (o + 5) / 6 * pairs * 6)
        for oc in 0..<o {
            for ic in 0..<i {
                let half = UInt32(UInt16(truncatingIfNeeded: q[oc * i + ic]))
                words[((oc / 6) * pairs + ic / 2) * 6 + oc % 6] |= Int32(bitPattern: ic % 2 == 0 ? half : half << 16)
            }
        }
        return words
    }

    /// The largest input magnitude that keeps `inputs` products with weights
    /// up to `maxWeight` inside int32, capped at 32767.
    public static func limit(inputs: Int, maxWeight: Int) -> Float {
        let pairs = (inputs + 1) / 2
        return Float(maxWeight == 0 ? 32767 : min(32767, Double(Int32.max) / Double(2 * pairs * maxWeight)).rounded(.down))
    }
}

/// u8 x s8 quads (`vpdpbusd`): four 8-bit products summed per 32-bit lane.
/// The variant of `PairGemm` for tiers with AVX-512 VNNI, where it does 64
/// multiply-adds per instruction (4x the fp32 FMA): inputs are quantized per
/// column to `u = round(x * 127 / max|x|) + 128` in [1, 255], four input
/// channels per word; weights are int8, four per word; the zero point comes
/// back out exactly in int32 as `128 * sum_i W[o][i]` (`rowOffsets`).
public enum QuadGemm<V: SIMD> where V.Scalar == Float {
    /// Quantizes columns `columns` of `x` into quad words `words[k * planeStride + j]`
    /// (channels 4k ..< 4k + 4, low byte first; missing channels hold the zero point).
    @inlinable
    public static func quantize<D: IntegerDot>(_ x: UnsafePointer<Float>, planeStride t: Int, inputs: Int, columns: Range<Int>,
                                            words: UnsafeMutablePointer<Int32>, columnScales: UnsafeMutablePointer<Float>,
                                            inverse: UnsafeMutablePointer<Float>, _: D.Type) where D.Floats == V {
        let w = V.scalarCount, quads = (inputs + 3) / 4
        PairGemm<V>.scaleColumns(x, planeStride: t, inputs: inputs, columns: columns, limit: 127,
                                 columnScales: columnScales, inverse: inverse, D.self)
        @inline(__always) func byte(_ v: V) -> D.Lanes {
            // round(v) + 128 through the magic number, already in [1, 255].
            (unsafeBitCast(v + V(repeating: 12_582_912), to: D.Lanes.self) &- 0x4B40_0000 &+ 128) & 0xFF
        }
        for k in 0..<quads {
            let r = x + 4 * k * t
            var j = columns.lowerBound
            while j < columns.upperBound {
                let inv: V = load(inverse + j)
                var word = byte(load(r + j) * inv)
                for b in 1..<4 {
                    let q = 4 * k + b < inputs ? byte(load(r + b * t + j) * inv) : D.Lanes(repeating: 128)
                    word |= q &<< D.Lanes.Scalar(8 * b)
                }
                UnsafeMutableRawPointer(words + k * t + j).storeBytes(of: word, as: D.Lanes.self)
                j += w
            }
        }
    }
}

/// Packing of int8 weights for `QuadGemm`.
public enum QuadGemmWeights {
    /// `[O][I]` int8 -> `[ceil(O/6)][ceil(I/4)][6]` words (zero padded) and
    /// the zero-point corrections `128 * sum_i q[o][i]` (`ceil(O/6) * 6`).
    public static func pack(_ q: [Int32], outputs o: Int, inputs i: Int) -> (words: [Int32], offsets: [Int32]) {
        let quads = (i + 3) / 4
        var words = [Int32](repeating: 0, count: (o + 5) / 6 * quads * 6)
        var offsets = [Int32](repeating: 0, count: (o + 5) / 6 * 6)
        for oc in 0..<o {
            var sum: Int32 = 0
            for ic in 0..<i {
                let byte = UInt32(UInt8(truncatingIfNeeded: q[oc * i + ic])) << UInt32(8 * (ic % 4))
                words[((oc / 6) * quads + ic / 4) * 6 + oc % 6] |= Int32(bitPattern: byte)
                sum += q[oc * i + ic]
            }
            offsets[oc] = 128 * sum
        }
        return (words, offsets)
    }
}
