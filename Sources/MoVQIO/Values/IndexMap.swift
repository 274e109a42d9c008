/// A map of codebook indices, `[B, c, h, w]` (c = indices per position).
public struct IndexMap: Sendable, Equatable {
    /// `[batch, channelsPerPosition, height, width]`.
    public var shape: [Int]
    /// Row-major indices into the codebook.
    public var values: [Int32]

    /// An index map of `shape` `[B, c, h, w]` over `values` (throws unless they match).
    public init(shape: [Int], values: [Int32]) throws {
        guard shape.count == 4, shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw MoVQError.invalidInput("index map needs shape [B, c, h, w] matching its \(values.count) values, got \(shape)")
        }
        self.shape = shape; self.values = values
    }
}
