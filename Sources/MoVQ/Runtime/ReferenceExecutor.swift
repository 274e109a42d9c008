/// Runs a `ModelPlan` on the reference kernels: whole-batch NCHW tensors,
/// scalar loops, weights read from the mapped file at each op (fp16 and
/// int8 widened for the op, then dropped). The definition every SIMD
/// operator is tested against.
struct ReferenceExecutor: @unchecked Sendable {
    let file: PackedFile

    /// Runs `plan` on `input` (`[B, C, H, W]`, any batch).
    func run(_ plan: ModelPlan, _ input: Tensor, threads: Int) throws -> Tensor {
        let par = Parallelism(threads: threads)
        var lastUse = [Int](repeating: -1, count: plan.values.count)
        for (i, op) in plan.ops.enumerated() { for v in op.inputs { lastUse[v] = i } }
        var values = [Tensor?](repeating: nil, count: plan.values.count)
        values[plan.input] = input
        func conv(_ w: ConvWeights, _ x: Tensor, _ g: Conv2DGeometry, residual: Tensor? = nil) throws -> Tensor {
            try file.withFloats(w.weightName, shape: w.weightShape) { wt in
                try file.withFloats(w.biasName, shape: [w.outChannels]) { b in
                    Conv2DReference.forward(x, weight: wt, bias: b, geometry: g, residual: residual, parallelism: par)
                }
            }
        }
        func same(_ w: ConvWeights) -> Conv2DGeometry { Conv2DGeometry(inChannels: w.inChannels, outChannels: w.outChannels, kernel: w.kernel) }
        for (i, op) in plan.ops.enumerated() {
            switch op {
            case .conv(let w, let x, let y, let r):
                values[y] = try conv(w, values[x]!, same(w), residual: r.map { values[$0]! })
            case .upsampleConv(let w, let x, let y):
                values[y] = try conv(w, UpsampleReference.nearest2x(values[x]!), same(w))
            case .downsampleConv(let w, let x, let y):
                var g = Conv2DGeometry(inChannels: w.inChannels, outChannels: w.outChannels, kernel: 3, stride: 2)
                g.padTop = 0; g.padLeft = 0; g.padBottom = 1; g.padRight = 1
                values[y] = try conv(w, values[x]!, g)
            case .modulation(let n, let z, let s, let t):
                values[s] = try conv(n.convY!, values[z]!, same(n.convY!))
                values[t] = try conv(n.convB!, values[z]!, same(n.convB!))
            case .groupNorm(let n, let x, let y, let m, let silu):
                let modulation = m.map { SpatialModulation(scale: values[$0.scale]!, shift: values[$0.shift]!) }
                values[y] = try file.withFloats(n.gammaName, shape: [n.channels]) { gamma in
                    try file.withFloats(n.betaName, shape: [n.channels]) { beta in
                        GroupNormReference.forward(values[x]!, gamma: gamma, beta: beta, groups: n.groups, eps: n.eps,
                                                   modulation: modulation, silu: silu, parallelism: par)
                    }
                }
            case .attention(let a, let n, let r, let y):
                values[y] = try withProjections(a) { AttentionReference.forward(residual: values[r]!, normalized: values[n]!, weights: $0, parallelism: par) }
            }
            for v in op.inputs where lastUse[v] == i && v != plan.output { values[v] = nil }
        }
        return values[plan.output]!
    }

    /// The four projections of an attention, as fp32 buffers.
    func withProjections<R>(_ a: AttentionWeights, _ body: (AttentionReference.Projections) throws -> R) throws -> R {
        let c = a.channels
        func w(_ i: Int, _ got: [(UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>)]) throws -> R {
            if i == AttentionWeights.projections.count {
                return try body(AttentionReference.Projections(q: got[0].0, qBias: got[0].1, k: got[1].0, kBias: got[1].1,
                                                               v: got[2].0, vBias: got[2].1, out: got[3].0, outBias: got[3].1))
            }
            let p = AttentionWeights.projections[i]
            return try file.withFloats(a.weightName(p), shape: [c, c]) { wt in
                try file.withFloats(a.biasName(p), shape: [c]) { b in try w(i + 1, got + [(wt, b)]) }
            }
        }
        return try w(0, [])
    }
}
