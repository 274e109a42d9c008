/// A float tensor read from a checkpoint, widened to fp32, before mapping.
public struct CheckpointTensor: Sendable {
    /// The checkpoint's key.
    public var name: String
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// Row-major values.
    public var values: [Float]
}

/// `tensors` (by our name) in the order of `specs`, checked: no name the
/// specs lack, none missing, shapes equal (with `trailingOnes`, also equal
/// once trailing 1s are dropped: 1x1 convs stored as linears), values finite.
/// Errors name a tensor by `display(name)` (its checkpoint key).
func matchSpecs(_ tensors: [String: CheckpointTensor], _ specs: [TensorSpec], trailingOnes: Bool = false,
                display: (String) -> String = { $0 }) throws -> [CheckpointTensor] {
    let unknown = Set(tensors.keys).subtracting(specs.map(\.name)).map(display).sorted()
    if !unknown.isEmpty { throw MoVQError.unknownKeys(unknown) }
    let strip = { (s: [Int]) -> [Int] in var s = s; while s.count > 2 && s.last == 1 { s.removeLast() }; return s }
    return try specs.map { spec in
        guard var t = tensors[spec.name] else { throw MoVQError.missingTensor(display(spec.name)) }
        if t.shape != spec.shape {
            guard trailingOnes, strip(t.shape) == strip(spec.shape) else {
                throw MoVQError.shapeMismatch(tensor: display(spec.name), expected: spec.shape, found: t.shape)
            }
            t.shape = spec.shape
        }
        if t.values.contains(where: { !$0.isFinite }) { throw MoVQError.nonFiniteWeights(display(spec.name)) }
        return t
    }
}
