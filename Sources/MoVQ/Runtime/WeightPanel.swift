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

/// The integer Winograd modes' weights (`WinogradInt16Args`): int16 mode,
/// PairGemm words of `U'` with output scales `s[o] / 4` padded to whole
/// groups of 6 and the input limit that keeps every int32 sum exact; or byte
/// mode (`WinogradByteWeights`), quad words with per-point scales and
/// zero-point corrections on quad tiers, pair words of the same int8 values
/// elsewhere (input limit 127).
struct Int16WinogradPanel: @unchecked Sendable {
    let words: Panel<Int32>
    let scales: [Float]
    let limit: Float
    /// Byte mode: floats between the points' scales (0 in int16 mode).
    let scaleStride: Int
    /// Byte mode on quad tiers: `128 * sum_i u8` per point and output channel.
    let offsets: [Int32]?

    /// The integer weights of `weight`, nil unless it is int8: `winograd6-s8`
    /// forms run in byte mode (in place on quad tiers: `quads`, the tier has
    /// `quadWinograd`; repacked as pairs elsewhere); `winograd6-int16` forms
    /// and plain int8 values (`pack`: this operator runs an integer mode) run
    /// in byte mode too, requantized at load, unless `byteMode` is off
    /// (`RuntimeOptions.byteWinograd`), which keeps them in int16 mode (the words
    /// in place; the limit comes from their largest magnitude, as packing computes it).
    init?(_ weight: StoredWeights, pack: Bool, outChannels o: Int, inChannels i: Int, upsample: Bool, quads: Bool,
          byteMode: Bool = RuntimeOptions.current.byteWinograd) {
        let points = upsample ? 9 : 16, stride = (o + 5) / 6 * 6
        var words: Panel<Int32>, scales: [Float], limit: Float
        switch weight {
        case .packedS8(let mapped, let s, _, let owner):
            let sums = s[(points * stride)...]
            scales = Array(s[..<(points * stride)]); scaleStride = stride; self.limit = 127
            if quads {
                self.words = Panel(mapped: mapped, owner: owner); offsets = sums.map { 128 * Int32($0) }  // integers (validated at open)
            } else {
                self.words = Panel(WinogradByteWeights.pairs(fromQuads: mapped, points: points, outChannels: o, inChannels: i)); offsets = nil
            }
            self.scales = scales
            return
        case .packedInt16(let mapped, let s, _, let owner):
            words = Panel(mapped: mapped, owner: owner)
            scales = WinogradInt16Weights.outputScales(s)
            limit = PairGemmWeights.limit(inputs: i, maxWeight: Int(WinogradInt16Weights.largestMagnitude(mapped)))
        case .int8(let q, let s) where pack:
            let p = WinogradInt16Weights.pack(q, scales: s, outChannels: o, inChannels: i, upsample: upsample)
            words = Panel(p.words); scales = p.scales; limit = p.limit
        default: return nil
        }
        guard byteMode && i <= WinogradByteWeights.maxInputs else {
            self.words = words; self.scales = scales; self.limit = limit; scaleStride = 0; offsets = nil
            return
        }
        let b = words.withUnsafeBufferPointer { w in scales.withUnsafeBufferPointer { s in
            WinogradByteWeights.pack(pairWords: w, scales: s, points: points, outChannels: o, inChannels: i, quads: quads)
        } }
        self.words = Panel(b.words); self.scales = b.scales; self.limit = 127; scaleStride = stride; offsets = b.offsets
    }

    var residentBytes: Int { words.residentBytes + (scales.count + (offsets?.count ?? 0)) * 4 }
}

extension PackedFile {
    /// The bias of conv `w` as fp32 (zeros for a conv without one).
    func withBias<R>(of w: ConvWeights, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard w.hasBias else { return try [Float](repeating: 0, count: w.outChannels).withUnsafeBufferPointer(body) }
        return try withFloats(w.biasName, shape: [w.outChannels], body)
    }
}
