import MoVQKernelCore

/// How a tensor's stored values are arranged. `plain` is row-major in the
/// logical shape; the kernel layouts are the arrangements the runtime's
/// kernels read, so a file storing them is used in place (map and validate,
/// no packing at load, and the mapped pages are shared by every process
/// that opens the file). The fp32 kernel layouts hold `f32` values, the
/// int16 ones `i16` values with an `f32` scale per output channel, the s8
/// ones `i8` values with an `f32` scale and row sum per point and output
/// channel (`scaleShape`).
public enum TensorLayout: String, Codable, Sendable, CaseIterable {
    /// Row-major in the logical shape.
    case plain
    /// `PlanarConvWeights.pack`: `[ceil(O/6)][I][k*k][6]`, zero padded, for
    /// shapes `[O, I, k, k]` and `[O, I]` (k = 1): direct convolutions and
    /// linear layers.
    case planar6
    /// `WinogradWeights.pack`: the F(2x2, 3x3) transform `U = G g G^T` of a
    /// `[O, I, 3, 3]` kernel, `[16][ceil(O/6)][I][6]`, zero padded.
    case winograd6
    /// `WinogradWeights.pack(upsample: true)`: the 9 points of `U` that
    /// nearest-2x upsampling leaves, `[9][ceil(O/6)][I][6]`.
    case winograd6Upsample = "winograd6-upsample"
    /// `WinogradInt16Weights.pack`: for int8 weights `q` (scales `s`), the
    /// exact integer transform `U' = (2G) q (2G)^T` (`U = U' s / 4`),
    /// `[16][ceil(O/6)][ceil(I/2)][6][2]` int16: each pair (even input
    /// channel first) is one PairGemm word; zero padded.
    case winograd6Int16 = "winograd6-int16"
    /// The 9 upsampling points of `winograd6-int16`, `[9][ceil(O/6)][ceil(I/2)][6][2]`.
    case winograd6UpsampleInt16 = "winograd6-upsample-int16"
    /// `WinogradByteWeights.pack(quads: true)`: `U'` of `winograd6-int16`
    /// requantized per point and output channel to int8, `[16][ceil(O/6)][ceil(I/4)][6][4]`
    /// (each 4 input channels one QuadGemm word, lowest channel first; zero
    /// padded); its scale tensor is `[2][16 * ceil(O/6) * 6]`: the output
    /// scales, then each row's sum of int8 values.
    case winograd6S8 = "winograd6-s8"
    /// The 9 upsampling points of `winograd6-s8`, `[9][ceil(O/6)][ceil(I/4)][6][4]`, scales `[2][9 * ceil(O/6) * 6]`.
    case winograd6UpsampleS8 = "winograd6-upsample-s8"

    /// The element type the layout stores (`plain`: any).
    public var dtype: DType? {
        switch self {
        case .plain: return nil
        case .planar6, .winograd6, .winograd6Upsample: return .f32
        case .winograd6Int16, .winograd6UpsampleInt16: return .i16
        case .winograd6S8, .winograd6UpsampleS8: return .i8
        }
    }

    /// Winograd points a Winograd layout stores (16, or 9 for the upsampling forms; nil otherwise).
    public var winogradPoints: Int? {
        switch self {
        case .winograd6, .winograd6Int16, .winograd6S8: return 16
        case .winograd6Upsample, .winograd6UpsampleInt16, .winograd6UpsampleS8: return 9
        case .plain, .planar6: return nil
        }
    }

    /// The shape of the `f32` scale tensor an int8-valued tensor of logical
    /// `shape` in this layout carries: one scale per output channel, or for
    /// the s8 layouts a scale and a row sum per point and output channel.
    public func scaleShape(_ shape: [Int]) -> [Int] {
        guard self == .winograd6S8 || self == .winograd6UpsampleS8, let points = winogradPoints else { return [shape.first ?? 0] }
        return [2, points * ((shape[0] + 5) / 6) * 6]
    }

    /// The int16 form of a Winograd layout (what `movq convert` stored int8 Winograd weights in before the s8 form).
    public var int16Form: TensorLayout? {
        switch self {
        case .winograd6: return .winograd6Int16
        case .winograd6Upsample: return .winograd6UpsampleInt16
        default: return nil
        }
    }

    /// The s8 form of a Winograd layout, which int8 weights are stored in.
    public var byteForm: TensorLayout? {
        switch self {
        case .winograd6: return .winograd6S8
        case .winograd6Upsample: return .winograd6UpsampleS8
        default: return nil
        }
    }

    /// Stored elements for the logical `shape`, computed with overflow
    /// checks; nil when the layout does not apply to the shape or the count
    /// passes `limit`.
    public func storedElements(_ shape: [Int], limit: Int = .max) -> Int? {
        if self == .plain { return CheckedSize.product(shape, limit: limit) }
        guard applies(to: shape) else { return nil }
        let o = shape[0], i = shape[1], k = shape.count == 4 ? shape[2] : 1
        guard let groups = CheckedSize.sum(o, 5).map({ $0 / 6 }), let pairs = CheckedSize.sum(i, 1).map({ $0 / 2 }),
              let quads = CheckedSize.sum(i, 3).map({ $0 / 4 }) else { return nil }
        switch self {
        case .plain, .planar6: return CheckedSize.product([k * k, groups, 6, i], limit: limit)
        case .winograd6: return CheckedSize.product([16, groups, 6, i], limit: limit)
        case .winograd6Upsample: return CheckedSize.product([9, groups, 6, i], limit: limit)
        case .winograd6Int16: return CheckedSize.product([16, groups, 6, pairs, 2], limit: limit)
        case .winograd6UpsampleInt16: return CheckedSize.product([9, groups, 6, pairs, 2], limit: limit)
        case .winograd6S8: return CheckedSize.product([16, groups, 6, quads, 4], limit: limit)
        case .winograd6UpsampleS8: return CheckedSize.product([9, groups, 6, quads, 4], limit: limit)
        }
    }

    /// Whether the layout is defined for the logical `shape`: every shape
    /// for `plain`; `[O, I, k, k]` or `[O, I]` for `planar6`; `[O, I, 3, 3]`
    /// for the Winograd layouts (all sizes positive).
    public func applies(to shape: [Int]) -> Bool {
        if self == .plain { return true }
        guard shape.count == 2 || (shape.count == 4 && shape[2] == shape[3]), shape.allSatisfy({ $0 > 0 }) else { return false }
        return self == .planar6 || (shape.count == 4 && shape[2] == 3)
    }

    /// Whether the plain values can be recovered exactly (`unpack`,
    /// `unpackInt16`): a permutation can, and the exact integer transform of
    /// the int16 layouts; the fp32 Winograd transform and the s8
    /// requantization (both rounded) cannot.
    public var isInvertible: Bool { self == .plain || self == .planar6 || dtype == .i16 }

    /// The stored arrangement of plain `values` of logical `shape` (the shape
    /// must be one `storedElements` accepts).
    package func pack(_ values: UnsafeBufferPointer<Float>, shape: [Int]) -> [Float] {
        let o = shape[0], i = shape[1], k = shape.count == 4 ? shape[2] : 1
        switch self {
        case .plain: return Array(values)
        case .planar6: return PlanarConvWeights.pack(values, outChannels: o, inChannels: i, kernel: k)
        case .winograd6: return WinogradWeights.pack(values, outChannels: o, inChannels: i)
        case .winograd6Upsample: return WinogradWeights.pack(values, outChannels: o, inChannels: i, upsample: true)
        case .winograd6Int16, .winograd6UpsampleInt16, .winograd6S8, .winograd6UpsampleS8:
            preconditionFailure("integer layouts are packed from int8 values (packInt16, packS8)")
        }
    }

    /// The QuadGemm words of int8 weights `q` (scales `scales`) in an s8
    /// layout, and its scale tensor (`scaleShape`: output scales, then row sums).
    package func packS8(_ q: UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>, shape: [Int]) -> (words: [Int32], scales: [Float]) {
        precondition(self == .winograd6S8 || self == .winograd6UpsampleS8)
        let o = shape[0], i = shape[1], upsample = self == .winograd6UpsampleS8
        let pairs = WinogradInt16Weights.pack(q, scales: scales, outChannels: o, inChannels: i, upsample: upsample)
        let bytes = pairs.words.withUnsafeBufferPointer { w in pairs.scales.withUnsafeBufferPointer { s in
            WinogradByteWeights.pack(pairWords: w, scales: s, points: winogradPoints!, outChannels: o, inChannels: i, quads: true)
        } }
        return (bytes.words, bytes.scales + bytes.offsets!.map { Float($0 / 128) })
    }

    /// The PairGemm words of int8 weights `q` (scales `scales`) in an int16 layout.
    package func packInt16(_ q: UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>, shape: [Int]) -> [Int32] {
        precondition(self == .winograd6Int16 || self == .winograd6UpsampleInt16)
        return WinogradInt16Weights.pack(q, scales: scales, outChannels: shape[0], inChannels: shape[1], upsample: self == .winograd6UpsampleInt16).words
    }

    /// The plain weights `q * scale[o]` back from the words of an int16
    /// layout (exact: `U'` is an integer transform with an integer left
    /// inverse; only rows and columns 0, 1, 3 of `U'` are needed, which
    /// the upsampling form keeps).
    package func unpackInt16(_ words: UnsafeBufferPointer<Int32>, scales: UnsafeBufferPointer<Float>, shape: [Int]) -> [Float] {
        let o = shape[0], i = shape[1], pairs = (i + 1) / 2, groups = (o + 5) / 6, panel = groups * pairs * 6
        let points = self == .winograd6UpsampleInt16 ? WinogradWeights.upsamplePoints : Array(0..<16)
        var plain = [Float](repeating: 0, count: o * i * 9)
        var u = [Int32](repeating: 0, count: 16), b = [Int32](repeating: 0, count: 12)
        for oc in 0..<o {
            for ic in 0..<i {
                let word = ((oc / 6) * pairs + ic / 2) * 6 + oc % 6
                for (slot, p) in points.enumerated() {
                    let w = UInt32(bitPattern: words[slot * panel + word])
                    u[p] = Int32(Int16(truncatingIfNeeded: ic % 2 == 0 ? w : w >> 16))
                }
                // U' = B (2G)^T with B = (2G) q ([4][3]): B's columns 0 and 2 are U' columns 0 and 3 halved, column 1 the rest.
                for a in [0, 1, 3] {
                    b[a * 3] = u[a * 4] / 2; b[a * 3 + 2] = u[a * 4 + 3] / 2
                    b[a * 3 + 1] = u[a * 4 + 1] &- b[a * 3] &- b[a * 3 + 2]
                }
                // B = (2G) q: q's rows 0 and 2 are B rows 0 and 3 halved, row 1 the rest.
                for x in 0..<3 {
                    let q0 = b[x] / 2, q2 = b[9 + x] / 2, q1 = b[3 + x] &- q0 &- q2
                    plain[(oc * i + ic) * 9 + x] = Float(q0) * scales[oc]
                    plain[(oc * i + ic) * 9 + 3 + x] = Float(q1) * scales[oc]
                    plain[(oc * i + ic) * 9 + 6 + x] = Float(q2) * scales[oc]
                }
            }
        }
        return plain
    }

    /// The plain values back from an invertible layout (nil for Winograd).
    package func unpack(_ stored: UnsafeBufferPointer<Float>, shape: [Int]) -> [Float]? {
        switch self {
        case .plain: return Array(stored)
        case .planar6:
            let o = shape[0], i = shape[1], k = shape.count == 4 ? shape[2] : 1, taps = k * k
            var plain = [Float](repeating: 0, count: o * i * taps)
            for oc in 0..<o {
                for ic in 0..<i {
                    for t in 0..<taps { plain[(oc * i + ic) * taps + t] = stored[(((oc / 6) * i + ic) * taps + t) * 6 + oc % 6] }
                }
            }
            return plain
        case .winograd6, .winograd6Upsample, .winograd6Int16, .winograd6UpsampleInt16, .winograd6S8, .winograd6UpsampleS8: return nil
        }
    }

    /// Whether a stride-1 convolution runs as Winograd F(2x2, 3x3): 3x3
    /// kernels between at least 8 input and 8 output channels (fewer
    /// channels leave too little work per transform).
    package static func winogradServes(kernel: Int, inChannels: Int, outChannels: Int) -> Bool {
        kernel == 3 && inChannels >= 8 && outChannels >= 8
    }
}

/// Which layout `convert` stores fp32 weights in.
public enum LayoutChoice: String, Sendable, CaseIterable {
    /// Each fp32 weight in the layout its kernel reads (`ModelPlan.kernelLayouts`): loading is map and validate.
    case kernel
    /// Everything row-major: smaller files (Winograd layouts are 16/9 of the
    /// plain 3x3 kernel), packed at load; what the reference backend and
    /// re-conversion to another precision read.
    case plain
}
