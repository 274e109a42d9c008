/// Overflow-checked size arithmetic: the one place sizes read from files and
/// command lines are multiplied. Every helper returns nil (never traps, never
/// wraps) when a factor is negative, a product overflows or passes `limit`.
package enum CheckedSize {
    /// `a * b`, or nil on overflow, a negative factor or a result above `limit`.
    package static func product(_ a: Int, _ b: Int, limit: Int = .max) -> Int? {
        product([a, b], limit: limit)
    }

    /// The product of `factors` (1 for none), or nil on overflow, a negative
    /// factor or a result above `limit`.
    package static func product(_ factors: [Int], limit: Int = .max) -> Int? {
        var n = 1
        for d in factors {
            guard d >= 0 else { return nil }
            let (m, o) = n.multipliedReportingOverflow(by: d)
            guard !o, m <= limit else { return nil }
            n = m
        }
        return n
    }

    /// `a + b`, or nil on overflow, a negative term or a result above `limit`.
    package static func sum(_ a: Int, _ b: Int, limit: Int = .max) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (s, o) = a.addingReportingOverflow(b)
        return o || s > limit ? nil : s
    }

    /// Byte count of `shape` elements of `elementSize` bytes each.
    package static func bytes(_ shape: [Int], elementSize: Int, limit: Int = .max) -> Int? {
        product(shape + [elementSize], limit: limit)
    }
}

/// Element count of a tensor shape from a file, or nil if a dimension is
/// negative or the product overflows or exceeds `limit` (2^34 elements by
/// default: more than any weight tensor we can run).
package func checkedElementCount(_ shape: [Int], limit: Int = 1 << 34) -> Int? {
    CheckedSize.product(shape, limit: limit)
}
