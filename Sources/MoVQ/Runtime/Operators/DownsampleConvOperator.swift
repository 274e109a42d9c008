import MoVQKernelCore

/// The encoder's downsampling conv (pad right/bottom by 1, 3x3, stride 2) as
/// a stride-1 2x2 conv over the four phase planes of the input
/// (space-to-depth): phase (a, b) holds pixels (2y + a, 2x + b), and output
/// (y, x) reads phase rows y (ky = 0, 1) and y + 1 (ky = 2 on phase a = 0),
/// likewise for columns. Taps that do not exist get zero weights.
struct DownsampleConvOperator: @unchecked Sendable {
    let inChannels: Int, outChannels: Int
    let weights: [Float]
    let bias: [Float]

    /// Packs a 3x3 `weight` `[out, in, 3, 3]`.
    init(weight: UnsafeBufferPointer<Float>, bias b: UnsafeBufferPointer<Float>, inChannels i: Int, outChannels o: Int) {
        inChannels = i; outChannels = o
        // (phase, tap) a 3x3 index lands on: k = 0 -> (0, 0), k = 1 -> (1, 0), k = 2 -> (0, 1).
        let phaseOf = [0, 1, 0], tapOf = [0, 0, 1]
        let ci = 4 * i
        var w2 = [Float](repeating: 0, count: o * ci * 4)
        for oc in 0..<o {
            for ic in 0..<i {
                for ky in 0..<3 {
                    for kx in 0..<3 {
                        let ch = (phaseOf[ky] * 2 + phaseOf[kx]) * i + ic
                        w2[((oc * ci + ch) * 2 + tapOf[ky]) * 2 + tapOf[kx]] = weight[((oc * i + ic) * 3 + ky) * 3 + kx]
                    }
                }
            }
        }
        weights = w2.withUnsafeBufferPointer { PlanarConvWeights.pack($0, outChannels: o, inChannels: ci, kernel: 2) }
        bias = PlanarConvWeights.packBias(b, outChannels: o)
    }

    /// Bytes of the packed weights this operator keeps.
    var residentBytes: Int { (weights.count + bias.count) * 4 }

    /// Scratch floats for an input of `height x width`: the four phase planes.
    func scratchFloats(height: Int, width: Int) -> Int { FeatureMap.floats(channels: 4 * inChannels, height: height / 2, width: width / 2) }

    /// `output` (h/2 x w/2) = conv3x3 stride 2 of `input` (h, w even).
    func callAsFunction(_ input: FeatureMap, into output: FeatureMap, scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let (h, w) = (input.height / 2, input.width / 2)
        let flops = 2.0 * Double(inChannels * outChannels * 9 * h * w)
        ctx.timed("downsample conv3x3/2 \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            let phases = FeatureMap(base: scratch, channels: 4 * inChannels, height: h, width: w)
            phases.zeroAllBorders()
            let ib = UnsafeSendableBox(input), pb = UnsafeSendableBox(phases), c = inChannels
            ctx.parallelism.forEachRange(c, minimumChunk: 4) { r in
                for ch in r {
                    let s = ib.value.plane(ch)
                    for a in 0..<2 {
                        for b in 0..<2 {
                            let d = pb.value.plane((a * 2 + b) * c + ch)
                            for y in 0..<h {
                                let srow = s + (2 * y + a + 1) * ib.value.rowStride + 1 + b, drow = d + (y + 1) * pb.value.rowStride + 1
                                for x in 0..<w { drow[x] = srow[2 * x] }
                            }
                        }
                    }
                }
            }
            let rs = phases.rowStride
            weights.withUnsafeBufferPointer { wp in bias.withUnsafeBufferPointer { bp in
                ctx.gemm(PlanarConvArgs(
                    input: phases.base, inputPlaneStride: phases.planeStride, rowStride: rs, kernel: 2,
                    tapOrigin: rs + 1, weights: wp.baseAddress!, bias: bp.baseAddress!, inChannels: 4 * inChannels,
                    outChannels: outChannels, output: output.base, outputPlaneStride: output.planeStride,
                    outputShift: rs + 1, residual: nil, positions: h * rs))
            } }
            output.zeroBorders(ctx.parallelism)
        }
    }
}
