/// A float tensor read from a checkpoint, widened to fp32, before mapping.
public struct CheckpointTensor: Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
}

/// Element count of a shape, or nil if a dimension is negative or the
/// product overflows or exceeds `limit`.
func checkedElementCount(_ shape: [Int], limit: Int = 1 << 34) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (m, o) = n.multipliedReportingOverflow(by: d)
        guard !o, m <= limit else { return nil }
        n = m
    }
    return n
}
