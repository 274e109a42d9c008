/// Weight precision of a packed file.
public enum Precision: String, Sendable, CaseIterable {
    case fp32, fp16, int8

    /// How a tensor is stored at this precision. Biases, norm parameters
    /// and the codebook (1-D or `quantize.*`) always stay fp32: they are
    /// small and sensitive. int8 also keeps fp32 where quantization would
    /// show most: the SCN modulation convs (`conv_y`, `conv_b`) and the
    /// decoder's `conv_out`, which writes the pixels.
    public func storage(for name: String, shape: [Int]) -> DType {
        if shape.count < 2 || name.hasPrefix("quantize.") { return .f32 }
        switch self {
        case .fp32: return .f32
        case .fp16: return .f16
        case .int8:
            let keep = name.contains(".conv_y.") || name.contains(".conv_b.") || name.hasPrefix("decoder.conv_out.")
            return keep ? .f32 : .i8
        }
    }
}
