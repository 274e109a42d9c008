import MoVQIO

/// The packed fp32 weights an operator reads: packed at load into its own
/// array, or the model file's mapped bytes when the file stores the
/// kernel's layout (then nothing is copied, and the pages are the page
/// cache's, shared with every process that maps the file).
struct WeightPanel: @unchecked Sendable {
    private let owned: [Float]
    private let mapped: UnsafeBufferPointer<Float>?
    /// Keeps the mapping alive (the `PackedFile`).
    private let owner: AnyObject?

    /// Weights packed at load.
    init(_ owned: [Float]) { self.owned = owned; mapped = nil; owner = nil }

    /// Weights read in place from a mapping `owner` keeps alive.
    init(mapped: UnsafeBufferPointer<Float>, owner: AnyObject) { owned = []; self.mapped = mapped; self.owner = owner }

    static let empty = WeightPanel([])

    /// Bytes this panel allocated (mapped panels: 0, the pages are the file's).
    var residentBytes: Int { owned.count * 4 }

    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if let mapped { return try body(mapped) }
        return try owned.withUnsafeBufferPointer(body)
    }
}
