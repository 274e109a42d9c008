/// One weight tensor the architecture needs: canonical (diffusers) name and shape.
public struct TensorSpec: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
}

