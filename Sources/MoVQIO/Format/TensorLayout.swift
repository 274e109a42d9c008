import MoVQKernelCore

/// How a tensor's stored values are arranged. `plain` is row-major in the
/// logical shape; the kernel layouts are the arrangements the runtime's
/// kernels read, so a file storing them is used in place (map and validate,
/// no packing at load, and the mapped pages are shared by every process
/// that opens the file). Kernel layouts hold fp32 values only.
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

    /// Stored elements for the logical `shape`, computed with overflow
    /// checks; nil when the layout does not apply to the shape or the count
    /// passes `limit`.
    public func storedElements(_ shape: [Int], limit: Int = .max) -> Int? {
        if self == .plain { return CheckedSize.product(shape, limit: limit) }
        guard applies(to: shape) else { return nil }
        let o = shape[0], i = shape[1], k = shape.count == 4 ? shape[2] : 1
        let points = self == .winograd6 ? 16 : self == .winograd6Upsample ? 9 : k * k
        guard let groups = CheckedSize.sum(o, 5).map({ $0 / 6 }) else { return nil }
        return CheckedSize.product([points, groups, 6, i], limit: limit)
    }

    /// Whether the layout is defined for the logical `shape`: every shape
    /// for `plain`; `[O, I, k, k]` or `[O, I]` for `planar6`; `[O, I, 3, 3]`
    /// for the Winograd layouts (all sizes positive).
    public func applies(to shape: [Int]) -> Bool {
        if self == .plain { return true }
        guard shape.count == 2 || (shape.count == 4 && shape[2] == shape[3]), shape.allSatisfy({ $0 > 0 }) else { return false }
        return self == .planar6 || (shape.count == 4 && shape[2] == 3)
    }

    /// Whether the plain values can be recovered exactly from this layout
    /// (`unpack`): a permutation can, a Winograd transform cannot.
    public var isInvertible: Bool { self == .plain || self == .planar6 }

    /// The stored arrangement of plain `values` of logical `shape` (the shape
    /// must be one `storedElements` accepts).
    package func pack(_ values: UnsafeBufferPointer<Float>, shape: [Int]) -> [Float] {
        let o = shape[0], i = shape[1], k = shape.count == 4 ? shape[2] : 1
        switch self {
        case .plain: return Array(values)
        case .planar6: return PlanarConvWeights.pack(values, outChannels: o, inChannels: i, kernel: k)
        case .winograd6: return WinogradWeights.pack(values, outChannels: o, inChannels: i)
        case .winograd6Upsample: return WinogradWeights.pack(values, outChannels: o, inChannels: i, upsample: true)
        }
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
        case .winograd6, .winograd6Upsample: return nil
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
