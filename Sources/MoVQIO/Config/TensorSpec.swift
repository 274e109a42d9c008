/// One weight tensor the architecture needs: canonical (diffusers) name and shape.
public struct TensorSpec: Equatable, Sendable {
    /// Canonical (diffusers) name.
    public var name: String
    /// Dimensions, outermost first.
    public var shape: [Int]
}

