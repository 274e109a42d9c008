import MoVQIO
import MoVQKernelCore

/// Nearest 2x upsampling followed by a 3x3 convolution, without the
/// upsampled copy: Winograd F(2x2, 3x3) in upsample mode (`Winograd`), one
/// 2x2 output tile per input pixel, 9 multiply-adds per input pixel and
/// channel pair (a direct 3x3 conv on the upsampled map needs 36); int16
/// GEMMs when the file stores the weight as int8.
struct UpsampleConvOperator: @unchecked Sendable {
    let inChannels: Int, outChannels: Int
    /// `WinogradWeights.pack(..., upsample: true)`, empty in int16 mode.
    let weights: WeightPanel
    /// `WinogradInt16Weights.pack(..., upsample: true)` in int16 mode.
    let int16: Int16WinogradPanel?
    let bias: [Float]
    let zeros: [Float]

    /// Packs a 3x3 `weight` `[out, in, 3, 3]` as the file stores it (int8 as
    /// in `ConvOperator`; `winograd6-upsample` weights are read in place).
    init(weight: StoredWeights, bias b: UnsafeBufferPointer<Float>, inChannels i: Int, outChannels o: Int, quads: Bool = false,
         byteMode: Bool = RuntimeOptions.current.byteWinograd) {
        inChannels = i; outChannels = o
        let int8 = ConvOperator.choose(inChannels: i, outChannels: o, kernel: 3, int8: weight.quantized != nil, upsample: true) == .winogradInt16
        int16 = Int16WinogradPanel(weight, pack: int8, outChannels: o, inChannels: i, upsample: true, quads: quads, byteMode: byteMode)
        weights = int16 != nil ? .empty : WeightPanel(weight) { WinogradWeights.pack($0, outChannels: o, inChannels: i, upsample: true) }
        bias = PlanarConvWeights.packBias(b, outChannels: o)
        zeros = [Float](repeating: 0, count: bias.count)
    }

    /// Bytes of the packed weights this operator keeps.
    var residentBytes: Int { weights.residentBytes + (bias.count + zeros.count) * 4 + (int16?.residentBytes ?? 0) }

    /// FLOPs executed for an input of `height x width`: 9 multiply-adds per input pixel and channel pair.
    func executedFLOPs(height h: Int, width w: Int) -> Double { 2.0 * Double(inChannels * outChannels * 9 * h * w) }

    /// Scratch floats a run on an input of `height x width` needs.
    func scratchFloats(height: Int, width: Int, _ ctx: ExecutionContext) -> Int {
        ctx.winogradScratchFloats(inChannels: inChannels, outChannels: outChannels, height: height, width: width, upsample: true)
    }

    /// `output` (2h x 2w) = conv3x3(upsample2x(input)).
    func callAsFunction(_ input: FeatureMap, into output: FeatureMap, scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        // Counted as the direct conv on the upsampled map (what the layer means).
        let flops = 2.0 * Double(inChannels * outChannels * 9 * output.height * output.width)
        ctx.timed("upsample2x+conv3x3 winograd\(int16.map { $0.scaleStride == 0 ? "-int16" : "-8bit" } ?? "") \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            ctx.winograd(input, into: output, residual: nil, upsample: true, weights: weights, int16: int16, bias: bias, zeros: zeros, scratch: scratch)
        }
    }
}
