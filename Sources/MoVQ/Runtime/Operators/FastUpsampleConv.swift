import MoVQKernelCore

/// Nearest 2x upsampling followed by a 3x3 convolution, computed as four 2x2
/// convolutions on the small input, one per output phase (py, px): output
/// pixel (2y + py, 2x + px) only ever sees input rows y - 1 + py ... y + py and
/// the same for columns, so each phase's 2x2 kernel is the 3x3 kernel with
/// the taps that land on the same input pixel summed. Same result up to
/// rounding, 4/9 of the multiply-adds, and no upsampled copy of the input.
struct FastUpsampleConv: @unchecked Sendable {
    let inChannels: Int, outChannels: Int
    /// Packed 2x2 weights per phase, index py * 2 + px.
    let phases: [[Float]]
    let bias: [Float]

    init(_ layer: Conv2DLayer) {
        let g = layer.geometry
        precondition(g.kernel == 3 && g.stride == 1)
        inChannels = g.inChannels; outChannels = g.outChannels
        // Which 3x3 rows (or columns) fold onto 2x2 tap t for phase p.
        let fold: [[[Int]]] = [[[0], [1, 2]], [[0, 1], [2]]]
        var ph: [[Float]] = []
        for py in 0..<2 {
            for px in 0..<2 {
                var w2 = [Float](repeating: 0, count: g.outChannels * g.inChannels * 4)
                for o in 0..<g.outChannels {
                    for i in 0..<g.inChannels {
                        for ty in 0..<2 {
                            for tx in 0..<2 {
                                var s: Float = 0
                                for ky in fold[py][ty] { for kx in fold[px][tx] { s += layer.weight[((o * g.inChannels + i) * 3 + ky) * 3 + kx] } }
                                w2[((o * g.inChannels + i) * 2 + ty) * 2 + tx] = s
                            }
                        }
                    }
                }
                ph.append(w2.withUnsafeBufferPointer { PlanarConvWeights.pack($0, outChannels: g.outChannels, inChannels: g.inChannels, kernel: 2) })
            }
        }
        phases = ph
        bias = PlanarConvWeights.packBias(layer.bias, outChannels: g.outChannels)
    }

    /// `output` (2h x 2w) = conv3x3(upsample2x(input)).
    func callAsFunction(_ input: PlanarMap, into output: PlanarMap, _ rt: FastRuntime, _ ws: Workspace) {
        let flops = 2.0 * Double(inChannels * outChannels * 4 * 4 * input.height * input.width)
        rt.timed("upsample2x+conv3x3 as 4 phase 2x2 convs \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            let phase = PlanarMap(ws, channels: outChannels, height: input.height, width: input.width)
            defer { ws.give(phase.buffer) }
            let rs = input.rowStride
            for py in 0..<2 {
                for px in 0..<2 {
                    phases[py * 2 + px].withUnsafeBufferPointer { w in bias.withUnsafeBufferPointer { b in
                        rt.gemm(PlanarConvArgs(
                            input: input.base, inputPlaneStride: input.planeStride, rowStride: rs, kernel: 2,
                            tapOrigin: py * rs + px, weights: w.baseAddress!, bias: b.baseAddress!,
                            inChannels: inChannels, outChannels: outChannels, output: phase.base,
                            outputPlaneStride: phase.planeStride, outputShift: rs + 1, residual: nil,
                            positions: input.height * rs))
                    } }
                    // Scatter the phase into every other pixel of the output interior.
                    let pb = UnsafeSendableBox(phase), ob = UnsafeSendableBox(output)
                    rt.parallelism.forEachRange(outChannels, minimumChunk: 4) { r in
                        for c in r {
                            let s = pb.value.plane(c), d = ob.value.plane(c)
                            for y in 0..<input.height {
                                let srow = s + (y + 1) * rs + 1, drow = d + (2 * y + py + 1) * output.rowStride + 1 + px
                                for x in 0..<input.width { drow[2 * x] = srow[x] }
                            }
                        }
                    }
                }
            }
        }
    }
}
