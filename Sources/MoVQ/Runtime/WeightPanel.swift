import MoVQIO
import MoVQKernelCore

/// Packed weights an operator reads: packed at load into its own array, or
/// the model file's mapped bytes when the file stores the kernel's layout
/// (then nothing is copied, and the pages are the page cache's, shared with
/// every process that maps the file).
struct Panel<Element>: @unchecked Sendable {
    private let owned: [Element]
    private let mapped: UnsafeBufferPointer<Element>?
    /// Keeps the mapping alive (the `PackedFile`).
    private let owner: AnyObject?

    /// Weights packed at load.
    init(_ owned: [Element]) { self.owned = owned; mapped = nil; owner = nil }

    /// Weights read in place from a mapping `owner` keeps alive.
    init(mapped: UnsafeBufferPointer<Element>, owner: AnyObject) { owned = []; self.mapped = mapped; self.owner = owner }

    static var empty: Panel { Panel([]) }

    /// Bytes this panel allocated (mapped panels: 0, the pages are the file's).
    var residentBytes: Int { owned.count * MemoryLayout<Element>.stride }

    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        if let mapped { return try body(mapped) }
        return try owned.withUnsafeBufferPointer(body)
    }
}

/// Packed fp32 weights (`PlanarConvWeights` or `WinogradWeights` layouts).
typealias WeightPanel = Panel<Float>

extension Panel where Element == Float {
    /// `weight` in place when the file stores it in a kernel layout (`.packed`), else `pack` of its plain fp32 values.
    init(_ weight: StoredWeights, pack: (UnsafeBufferPointer<Float>) -> [Float]) {
        if case .packed(let stored, _, let owner) = weight { self.init(mapped: stored, owner: owner) } else { self.init(weight.withFloats(pack)) }
    }
}

/// The int16 Winograd mode's weights (`WinogradInt16Args`): PairGemm words
/// of `U'`, output scales `s[o] / 4` padded to whole groups of 6, and the
/// input limit that keeps every int32 sum exact.
struct Int16WinogradPanel: @unchecked Sendable {
    let words: Panel<Int32>
    let scales: [Float]
    let limit: Float

    /// The int16 mode's weights of `weight`: its words in place when the
    /// file stores them (`winograd6-int16` forms; the limit comes from their
    /// largest magnitude, as packing computes it, so both give the same
    /// outputs), packed from int8 values when `pack` says this operator runs
    /// in int16 mode, nil otherwise.
    init?(_ weight: StoredWeights, pack: Bool, outChannels: Int, inChannels: Int, upsample: Bool) {
        switch weight {
        case .packedInt16(let mapped, let s, _, let owner):
            words = Panel(mapped: mapped, owner: owner)
            scales = WinogradInt16Weights.outputScales(s)
            limit = PairGemmWeights.limit(inputs: inChannels, maxWeight: Int(WinogradInt16Weights.largestMagnitude(mapped)))
        case .int8(let q, let s) where pack:
            let p = WinogradInt16Weights.pack(q, scales: s, outChannels: outChannels, inChannels: inChannels, upsample: upsample)
            words = Panel(p.words); scales = p.scales; limit = p.limit
        default: return nil
        }
    }

    var residentBytes: Int { words.residentBytes + scales.count * 4 }
}

extension PackedFile {
    /// The bias of conv `w` as fp32 (zeros for a conv without one).
    func withBias<R>(of w: ConvWeights, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard w.hasBias else { return try [Float](repeating: 0, count: w.outChannels).withUnsafeBufferPointer(body) }
        return try withFloats(w.biasName, shape: [w.outChannels], body)
    }
}
