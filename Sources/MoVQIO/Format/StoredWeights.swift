/// A weight tensor as the file stores it, borrowed: plain fp32 values
/// (fp16 tensors arrive widened), int8 values `q` with per-output-channel
/// scales (`w = q * scales[o]`), read in place so an int8 layer is packed
/// from its int8 values without a widened copy, or fp32 values already in
/// a kernel layout, which the operator keeps reading from the mapped file
/// (`owner` keeps the mapping alive).
package enum StoredWeights {
    case floats(UnsafeBufferPointer<Float>)
    case int8(UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>)
    case packed(UnsafeBufferPointer<Float>, TensorLayout, owner: AnyObject)
    /// int8 weights stored as their int16 Winograd words (`winograd6-int16`
    /// forms), with the int8 scales.
    case packedInt16(UnsafeBufferPointer<Int32>, scales: UnsafeBufferPointer<Float>, TensorLayout, owner: AnyObject)
    /// int8 weights stored requantized in the Winograd domain (`winograd6-s8`
    /// forms): QuadGemm words, and the scale tensor (`TensorLayout.scaleShape`: scales, then row sums).
    case packedS8(UnsafeBufferPointer<Int32>, scales: UnsafeBufferPointer<Float>, TensorLayout, owner: AnyObject)

    /// The int8 values and scales, if the tensor is stored as int8.
    package var quantized: (q: UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>)? {
        if case .int8(let q, let s) = self { return (q, s) }
        return nil
    }

    /// The kernel layout of `.packed` weights (nil otherwise).
    package var kernelLayout: TensorLayout? {
        switch self {
        case .packed(_, let layout, _), .packedInt16(_, _, let layout, _), .packedS8(_, _, let layout, _): return layout
        default: return nil
        }
    }

    /// Calls `body` with plain fp32 values: in place, or int8 widened as
    /// `Int8Weights.widen` does (the same values `PackedFile.withFloats`
    /// gives). `.packed` weights are for their own kernel only: operators
    /// take them in place and never ask for plain values.
    package func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        switch self {
        case .floats(let w): return try body(w)
        case .int8(let q, let s): return try Int8Weights.widen(q, scales: s).withUnsafeBufferPointer(body)
        case .packed(_, let layout, _), .packedInt16(_, _, let layout, _), .packedS8(_, _, let layout, _):
            preconditionFailure("\(layout.rawValue) weights are read in place by their kernel, not as plain values")
        }
    }
}
