/// A dense float32 tensor in row-major (C) order, e.g. NCHW activations.
public struct Tensor: Sendable, Equatable {
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// `shape.reduce(1, *)` values in row-major order.
    public var data: [Float]

    /// Wraps `data`; its count must equal the product of `shape`.
    public init(shape: [Int], data: [Float]) throws {
        let n = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), n == data.count else {
            throw MoVQError.invalidInput("tensor of shape \(shape) needs \(n) values, got \(data.count)")
        }
        self.shape = shape
        self.data = data
    }

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Number of elements.
    public var count: Int { data.count }
}
