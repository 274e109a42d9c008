import MoVQIO
import MoVQKernelCore

/// A stride-1 convolution (1x1 or 3x3, "same" padding) with weights packed
/// once, run on feature maps: 3x3 convolutions between enough channels use
/// Winograd F(2x2, 3x3) (`Winograd`, 16 instead of 36 multiply-adds per 2x2
/// tile; int16 GEMMs when the weights are int8, `WinogradInt16`), the rest
/// the direct planar kernel.
struct ConvOperator: @unchecked Sendable {
    /// How the convolution is computed.
    enum Algorithm: Sendable { case direct, winograd, winogradInt16 }

    let inChannels: Int, outChannels: Int, kernel: Int
    let algorithm: Algorithm
    /// `PlanarConvWeights.pack` or `WinogradWeights.pack` (empty for `.winogradInt16`).
    let weights: WeightPanel
    /// `WinogradInt16Weights.pack` for `.winogradInt16`.
    let int16: Int16WinogradPanel?
    let bias: [Float]
    let zeros: [Float]

    /// Packs `weight` (`[out, in, k, k]`, as the file stores it: int8
    /// weights run in an integer Winograd mode when the choice is Winograd:
    /// byte mode unless `byteMode` is off, as u8 x s8 quads when `quads`, the tier has `quadWinograd`).
    /// `algorithm` nil makes the automatic choice (`choose`). Weights the
    /// file stores in a kernel layout are read in place, and their layout
    /// fixes the algorithm (`planar6`: direct, `winograd6`: Winograd).
    init(weight: StoredWeights, bias b: UnsafeBufferPointer<Float>, inChannels i: Int, outChannels o: Int, kernel k: Int,
         algorithm: Algorithm? = nil, quads: Bool = false, byteMode: Bool = RuntimeOptions.current.byteWinograd) {
        inChannels = i; outChannels = o; kernel = k
        let int8 = weight.quantized
        var chosen = algorithm ?? Self.choose(inChannels: i, outChannels: o, kernel: k, int8: int8 != nil, upsample: false)
        if k != 3 || (chosen == .winogradInt16 && int8 == nil) { chosen = .direct }
        if let layout = weight.kernelLayout { chosen = layout == .winograd6 ? .winograd : layout.winogradPoints != nil ? .winogradInt16 : .direct }
        self.algorithm = chosen
        switch chosen {
        case .direct: weights = WeightPanel(weight) { PlanarConvWeights.pack($0, outChannels: o, inChannels: i, kernel: k) }
        case .winograd: weights = WeightPanel(weight) { WinogradWeights.pack($0, outChannels: o, inChannels: i) }
        case .winogradInt16: weights = .empty
        }
        int16 = Int16WinogradPanel(weight, pack: chosen == .winogradInt16, outChannels: o, inChannels: i, upsample: false, quads: quads, byteMode: byteMode)
        bias = PlanarConvWeights.packBias(b, outChannels: o)
        zeros = [Float](repeating: 0, count: bias.count)
    }

    /// The automatic choice for a 3x3 convolution with at least 8 input and
    /// output channels (`TensorLayout.winogradServes`): Winograd, in int16
    /// mode when the file stores the weight as int8; direct otherwise.
    /// `RuntimeOptions` can turn the two off for A/B runs of plain-layout files.
    static func choose(inChannels: Int, outChannels: Int, kernel: Int, int8: Bool, upsample: Bool) -> Algorithm {
        guard winogradShape(inChannels: inChannels, outChannels: outChannels, kernel: kernel) && (winogradEnabled || upsample) else {
            return .direct
        }
        return int8 && int16Enabled ? .winogradInt16 : .winograd
    }

    /// Convolutions Winograd serves.
    static func winogradShape(inChannels: Int, outChannels: Int, kernel: Int) -> Bool {
        TensorLayout.winogradServes(kernel: kernel, inChannels: inChannels, outChannels: outChannels)
    }

    static var winogradEnabled: Bool { RuntimeOptions.current.winograd }
    static var int16Enabled: Bool { RuntimeOptions.current.int16Winograd }

    /// Bytes of the packed weights this operator keeps.
    var residentBytes: Int { weights.residentBytes + (bias.count + zeros.count) * 4 + (int16?.residentBytes ?? 0) }

    /// FLOPs executed on a `height x width` map: Winograd does 16
    /// multiply-adds per 2x2 tile instead of 36.
    func executedFLOPs(height h: Int, width w: Int) -> Double {
        let pairs = Double(inChannels * outChannels)
        if algorithm == .direct { return 2 * pairs * Double(kernel * kernel * h * w) }
        let tiles = ((h + 1) / 2) * ((w + 1) / 2)
        return 2 * pairs * Double(16 * tiles)
    }

    /// Scratch floats a run on a `height x width` map needs.
    func scratchFloats(height: Int, width: Int, _ ctx: ExecutionContext) -> Int {
        algorithm == .direct ? 0 : ctx.winogradScratchFloats(inChannels: inChannels, outChannels: outChannels, height: height, width: width, upsample: false)
    }

    /// `output = conv(input) (+ residual)`; all maps have the same size.
    func callAsFunction(_ input: FeatureMap, into output: FeatureMap, residual: FeatureMap? = nil, scratch: UnsafeMutablePointer<Float>?,
                        _ ctx: ExecutionContext) {
        let flops = 2.0 * Double(inChannels * outChannels * kernel * kernel * input.height * input.width)
        let name = algorithm == .winograd ? "conv3x3 winograd" : algorithm == .winogradInt16 ? "conv3x3 winograd-\(int16?.scaleStride == 0 ? "int16" : "8bit")" : "conv\(kernel)x\(kernel)"
        ctx.timed("\(name) \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            switch algorithm {
            case .direct: runDirect(input, into: output, residual: residual, ctx)
            case .winograd, .winogradInt16:
                ctx.winograd(input, into: output, residual: residual, upsample: false, weights: weights, int16: int16, bias: bias,
                             zeros: zeros, scratch: scratch!)
            }
        }
    }

    private func runDirect(_ input: FeatureMap, into output: FeatureMap, residual: FeatureMap?, _ ctx: ExecutionContext) {
        let rs = input.rowStride
        weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                let args = PlanarConvArgs(
                    input: input.base, inputPlaneStride: input.planeStride, rowStride: rs, kernel: kernel,
                    tapOrigin: kernel == 3 ? 0 : rs + 1, weights: w.baseAddress!, bias: b.baseAddress!,
                    inChannels: inChannels, outChannels: outChannels, output: output.base,
                    outputPlaneStride: output.planeStride, outputShift: rs + 1,
                    residual: residual.map { UnsafePointer($0.base) }, residualPlaneStride: residual?.planeStride, positions: input.height * rs)
                ctx.gemm(args)
            }
        }
        output.zeroBorders(ctx.parallelism)
    }
}
