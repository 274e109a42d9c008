import MoVQKernelCore

/// GroupNorm + optional SCN modulation + optional SiLU in one pass over a
/// feature map. Statistics are global over each group (two passes: mean,
/// then squared deviations), in a fixed order.
struct GroupNormOperator: @unchecked Sendable {
    let gamma: [Float], beta: [Float]
    let groups: Int, eps: Float

    var residentBytes: Int { (gamma.count + beta.count) * 4 }

    /// `modulation`: the `ModulationOperator` maps `[C][mh][mw]`, applied nearest-neighbour.
    func callAsFunction(_ x: FeatureMap, into y: FeatureMap, modulation: (scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, height: Int, width: Int)?,
                        silu: Bool, _ ctx: ExecutionContext) {
        ctx.timed("groupnorm\(modulation != nil ? "+scn" : "")\(silu ? "+silu" : "") \(x.channels) @\(x.height)x\(x.width)") {
            run(x, into: y, modulation: modulation, silu: silu, ctx)
        }
    }

    private func run(_ x: FeatureMap, into y: FeatureMap, modulation mod: (scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, height: Int, width: Int)?,
                     silu: Bool, _ ctx: ExecutionContext) {
        let c = x.channels, cpg = c / groups
        let n = Double(cpg * x.height * x.width)
        var sums = [Double](repeating: 0, count: c)
        let k = ctx.kernels
        func planeSums(_ means: [Float]?) {
            sums.withUnsafeMutableBufferPointer { s in
                let sb = UnsafeSendableBox(s)
                ctx.parallelism.forEachRange(c, minimumChunk: 4) { range in
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
            let inv = Float(1 / (v + Double(eps)).squareRoot())
            for ch in (g * cpg)..<((g + 1) * cpg) {
                scale[ch] = inv * gamma[ch]
                shift[ch] = beta[ch] - means[g] * inv * gamma[ch]
            }
        }
        let scratchSize = 2 * x.width + 3 * 64
        scale.withUnsafeBufferPointer { sp in shift.withUnsafeBufferPointer { tp in
            let args = NormApplyArgs(
                input: x.base, output: y.base, planeStride: x.planeStride, rowStride: x.rowStride,
                height: x.height, width: x.width, scale: sp.baseAddress!, shift: tp.baseAddress!,
                modScale: mod?.scale, modShift: mod?.shift, modHeight: mod?.height ?? 1, modWidth: mod?.width ?? 1, silu: silu)
            let apply = k.normApply
            ctx.parallelism.forEachRange(c, minimumChunk: 2) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchSize)
                defer { scratch.deallocate() }
                apply(args, range, scratch)
            }
        } }
    }
}
