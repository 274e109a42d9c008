import MoVQKernelCore

/// Nearest 2x upsampling followed by a 3x3 convolution, without the
/// upsampled copy: Winograd F(2x2, 3x3) in upsample mode (`Winograd`), one
/// 2x2 output tile per input pixel, 9 multiply-adds per input pixel and
/// channel pair (a direct 3x3 conv on the upsampled map needs 36); int16
/// GEMMs when the file stores the weight as int8.
struct FastUpsampleConv: @unchecked Sendable {
    let inChannels: Int, outChannels: Int
    /// `WinogradWeights.pack(..., upsample: true)`, empty in int16 mode.
    let weights: [Float]
    /// `WinogradInt16Weights.pack(..., upsample: true)` in int16 mode.
    let int16: WinogradInt16Weights.Packed?
    let bias: [Float]
    let zeros: [Float]

    init(_ layer: Conv2DLayer) {
        let g = layer.geometry
        precondition(g.kernel == 3 && g.stride == 1)
        inChannels = g.inChannels; outChannels = g.outChannels
        int16 = FastConv.choose(layer, upsample: true) == .winogradInt16 ? FastConv.packInt16(layer, upsample: true) : nil
        weights = int16 != nil ? [] : WinogradWeights.pack(layer.weight, outChannels: g.outChannels, inChannels: g.inChannels, upsample: true)
        bias = PlanarConvWeights.packBias(layer.bias, outChannels: g.outChannels)
        zeros = [Float](repeating: 0, count: bias.count)
    }

    /// `output` (2h x 2w) = conv3x3(upsample2x(input)).
    func callAsFunction(_ input: PlanarMap, into output: PlanarMap, _ rt: FastRuntime) {
        precondition(input.channels == inChannels && output.channels == outChannels)
        precondition(output.height == 2 * input.height && output.width == 2 * input.width)
        // Counted as the direct conv on the upsampled map (what the layer means).
        let flops = 2.0 * Double(inChannels * outChannels * 9 * output.height * output.width)
        rt.timed("upsample2x+conv3x3 winograd\(int16 != nil ? "-int16" : "") \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            rt.winograd(input, into: output, residual: nil, upsample: true, weights: weights, int16: int16, bias: bias, zeros: zeros)
        }
    }
}
