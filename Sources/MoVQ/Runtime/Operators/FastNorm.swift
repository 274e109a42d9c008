import MoVQKernelCore

/// GroupNorm + optional SCN modulation + optional SiLU in one pass over a
/// padded planar map. Statistics are global over each group (two passes:
/// mean, then squared deviations), in a fixed order.
struct FastNorm: @unchecked Sendable {
    let layer: NormLayer

    func callAsFunction(_ x: PlanarMap, into y: PlanarMap, zq: Tensor?, silu: Bool, _ rt: FastRuntime) {
        rt.timed("groupnorm\(zq != nil && layer.convY != nil ? "+scn" : "")\(silu ? "+silu" : "") \(x.channels) @\(x.height)x\(x.width)") {
            run(x, into: y, zq: zq, silu: silu, rt)
        }
    }

    private func run(_ x: PlanarMap, into y: PlanarMap, zq: Tensor?, silu: Bool, _ rt: FastRuntime) {
        let c = x.channels, groups = layer.groups, cpg = c / groups
        let n = Double(cpg * x.height * x.width)
        var sums = [Double](repeating: 0, count: c)
        let k = rt.kernels
        func planeSums(_ means: [Float]?) {
            sums.withUnsafeMutableBufferPointer { s in
                let sb = UnsafeSendableBox(s)
                rt.parallelism.forEachRange(c, minimumChunk: 4) { range in
                    for ch in range {
                        sb.value[ch] = k.planeSum(x.plane(ch), x.rowStride, x.height, x.width, means.map { $0[ch / cpg] })
                    }
                }
            }
        }
        planeSums(nil)
        let means = (0..<groups).map { g in Float((0..<cpg).reduce(0.0) { $0 + sums[g * cpg + $1] } / n) }
        planeSums(means)
        var scale = [Float](repeating: 0, count: c), shift = scale
        for g in 0..<groups {
            let v = (0..<cpg).reduce(0.0) { $0 + sums[g * cpg + $1] } / n
            let inv = Float(1 / (v + Double(layer.eps)).squareRoot())
            for ch in (g * cpg)..<((g + 1) * cpg) {
                scale[ch] = inv * layer.gamma[ch]
                shift[ch] = layer.beta[ch] - means[g] * inv * layer.gamma[ch]
            }
        }
        // SCN: conv_y / conv_b of z_q at latent resolution (exact: 1x1 convs commute with nearest upsampling).
        var mod: (Tensor, Tensor)? = nil
        if let cy = layer.convY, let cb = layer.convB, let zq {
            let ctx = ExecutionContext(threads: 1)
            mod = (cy(zq, ctx), cb(zq, ctx))
        }
        let scratchSize = 2 * x.width + 3 * 64
        scale.withUnsafeBufferPointer { sp in shift.withUnsafeBufferPointer { tp in
            withOptionalPointers(mod) { ms, mt in
                let args = NormApplyArgs(
                    input: x.base, output: y.base, planeStride: x.planeStride, rowStride: x.rowStride,
                    height: x.height, width: x.width, scale: sp.baseAddress!, shift: tp.baseAddress!,
                    modScale: ms, modShift: mt, modHeight: mod?.0.shape[2] ?? 1, modWidth: mod?.0.shape[3] ?? 1, silu: silu)
                let apply = k.normApply
                rt.parallelism.forEachRange(c, minimumChunk: 2) { range in
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchSize)
                    defer { scratch.deallocate() }
                    apply(args, range, scratch)
                }
            }
        } }
    }
}

/// Calls `body` with base pointers of an optional pair of tensors.
func withOptionalPointers<R>(_ pair: (Tensor, Tensor)?, _ body: (UnsafePointer<Float>?, UnsafePointer<Float>?) -> R) -> R {
    guard let (a, b) = pair else { return body(nil, nil) }
    return a.data.withUnsafeBufferPointer { ap in b.data.withUnsafeBufferPointer { bp in body(ap.baseAddress, bp.baseAddress) } }
}
