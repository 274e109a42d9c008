/// A float tensor read from a checkpoint, widened to fp32, before mapping.
public struct CheckpointTensor: Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
}
