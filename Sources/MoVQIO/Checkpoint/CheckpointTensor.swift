/// A float tensor read from a checkpoint, widened to fp32, before mapping.
public struct CheckpointTensor: Sendable {
    /// The checkpoint's key.
    public var name: String
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// Row-major values.
    public var values: [Float]
}
