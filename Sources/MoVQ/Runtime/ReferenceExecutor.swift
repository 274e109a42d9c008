import Foundation

/// Runs a `ModelPlan` on the reference kernels: whole-batch NCHW tensors
/// (transformers: `[features, columns]`), scalar loops, weights read from
/// the mapped file at each op (fp16 and int8 widened for the op, then
/// dropped). The definition every SIMD operator is tested against.
struct ReferenceExecutor: @unchecked Sendable {
    let file: PackedFile

    /// Runs a feature-map plan on `input` (`[B, C, H, W]`, any batch).
    func run(_ plan: ModelPlan, _ input: Tensor, threads: Int) throws -> Tensor {
        var state: [Int: Tensor] = [:]
        return try run(plan, input: input, tokens: [], classes: [], step: 0, state: &state, threads: threads)[0]
    }

    /// Runs `plan` and returns its outputs. Transformer plans take `tokens`,
    /// `classes` and `step` as `TransformerExecutor.run` does; `state` holds
    /// the plan's state values (the key/value cache) between steps.
    func run(_ plan: ModelPlan, input: Tensor?, tokens: [Int32], classes: [Int], step: Int, state: inout [Int: Tensor],
             threads: Int) throws -> [Tensor] {
        let par = Parallelism(threads: threads)
        var lastUse = [Int](repeating: -1, count: plan.values.count)
        for (i, op) in plan.ops.enumerated() { for v in op.inputs { lastUse[v] = i } }
        var values = [Tensor?](repeating: nil, count: plan.values.count)
        values[plan.input] = input
        for v in plan.state { values[v] = state[v] ?? Tensor(zeros: [plan.values[v].channels, plan.values[v].width]) }
        func conv(_ w: ConvWeights, _ x: Tensor, _ g: Conv2DGeometry, residual: Tensor? = nil) throws -> Tensor {
            try file.withFloats(w.weightName, shape: w.weightShape) { wt in
                try file.withBias(of: w) { b in
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
            case .averagePool(let x, let y):
                values[y] = AveragePoolReference.forward(values[x]!)
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
            case .embed(let e, let y):
                values[y] = try embed(e, columns: plan.values[y].width, autoregressive: !plan.state.isEmpty, tokens: tokens, classes: classes, step: step)
            case .linear(let l, let x, let y, let r):
                values[y] = try linear(l, values[x]!, residual: r.map { values[$0]! })
            case .layerNorm(let n, let x, let y):
                values[y] = try layerNorm(n, values[x]!)
            case .gelu(let v, let rows, let gated):
                values[v] = gelu(values[v]!, rows: rows, gated: gated)
            case .selfAttention(let heads, let qkv, let y, let s, let cache):
                if let cache {
                    var (k, v) = (values[cache.keys]!, values[cache.values]!)
                    append(values[qkv]!, to: &k, &v, cache: cache, step: step)
                    values[cache.keys] = k; values[cache.values] = v
                }
                values[y] = attention(values[qkv]!, heads: heads, sequence: s, cache: cache.map { (values[$0.keys]!, values[$0.values]!, $0.length) }, step: step)
            }
            for v in op.inputs where lastUse[v] == i && !plan.outputs.contains(v) && !plan.state.contains(v) { values[v] = nil }
        }
        for v in plan.state { state[v] = values[v] }
        return plan.outputs.map { values[$0]! }
    }

    // Transformer ops on [features, columns] tensors.

    func embed(_ e: EmbeddingWeights, columns: Int, autoregressive: Bool, tokens: [Int32], classes: [Int], step: Int) throws -> Tensor {
        let d = e.features
        func table(_ name: String) throws -> [Float] { try file.floatArray(name, shape: file.entry(name)?.shape ?? []) }
        let tables = try e.tokenTables.map(table), cls = try table(e.classTable), pos = try table(e.positionTable)
        var x = Tensor(zeros: [d, columns])
        for col in 0..<columns {
            for k in 0..<d {
                var v: Float
                if autoregressive {
                    let t = Int(tokens[col])
                    v = (t < 0 ? cls[(-1 - t) * d + k] : tables[0][t * d + k]) + pos[step * d + k]
                } else {
                    let s = columns / classes.count, i = col / s, q = col % s
                    v = pos[q * d + k]
                    if q == 0 { v += cls[classes[i] * d + k] } else {
                        for ch in tables.indices { v += tables[ch][Int(tokens[(i * (s - 1) + q - 1) * tables.count + ch]) * d + k] }
                    }
                }
                x.data[k * columns + col] = v
            }
        }
        return x
    }

    func linear(_ l: LinearWeights, _ x: Tensor, residual: Tensor?) throws -> Tensor {
        let n = x.shape[1]
        var y = Tensor(zeros: [l.outputs, n])
        try file.withFloats(l.weightName, shape: [l.storedRows, l.inputs]) { w in
            try file.withFloats(l.biasName, shape: [l.outputs]) { b in
                for o in 0..<l.outputs {
                    for p in 0..<n {
                        var s = b[o]
                        for i in 0..<l.inputs { s += w[o * l.inputs + i] * x.data[i * n + p] }
                        y.data[o * n + p] = s + (residual?.data[o * n + p] ?? 0)
                    }
                }
            }
        }
        return y
    }

    func layerNorm(_ nw: LayerNormWeights, _ x: Tensor) throws -> Tensor {
        let d = x.shape[0], n = x.shape[1]
        let w = try file.floatArray(nw.weightName, shape: [d]), b = try nw.biasName.map { try file.floatArray($0, shape: [d]) }
        var y = x
        for p in 0..<n {
            let col = (0..<d).map { Double(x.data[$0 * n + p]) }
            let mean = nw.rms ? 0 : col.reduce(0, +) / Double(d)
            let variance = col.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
            let r = 1 / (variance + Double(nw.eps)).squareRoot()
            for k in 0..<d { y.data[k * n + p] = Float((col[k] - mean) * r) * w[k] + (b?[k] ?? 0) }
        }
        return y
    }

    func gelu(_ x: Tensor, rows: Int, gated: Bool) -> Tensor {
        let n = x.shape[1]
        func g(_ v: Float) -> Float { let u = 0.7978845608028654 * (Double(v) + 0.044715 * Double(v) * Double(v) * Double(v)); return Float(0.5 * Double(v) * (1 + tanh(u))) }
        var y = x
        for i in 0..<(rows * n) { y.data[i] = gated ? x.data[i] * g(x.data[rows * n + i]) : g(x.data[i]) }
        return y
    }

    func append(_ qkv: Tensor, to keys: inout Tensor, _ values: inout Tensor, cache: KeyValueCache, step: Int) {
        let d = qkv.shape[0] / 3, n = qkv.shape[1], w = keys.shape[1]
        for i in 0..<n {
            for k in 0..<d {
                keys.data[k * w + i * cache.length + step] = qkv.data[(d + k) * n + i]
                values.data[k * w + i * cache.length + step] = qkv.data[(2 * d + k) * n + i]
            }
        }
    }

    /// Per head, softmax(q k^T / sqrt(dh)) v within each sequence, or over a sequence's cached keys 0...step.
    func attention(_ qkv: Tensor, heads: Int, sequence s: Int, cache: (keys: Tensor, values: Tensor, length: Int)?, step: Int) -> Tensor {
        let d = qkv.shape[0] / 3, n = qkv.shape[1], dh = d / heads, scale = 1 / Double(dh).squareRoot()
        var out = Tensor(zeros: [d, n])
        for col in 0..<n {
            for h in 0..<heads {
                // Keys and values of this query: (feature, key) -> value.
                let count = cache == nil ? s : step + 1
                func key(_ k: Int, _ j: Int) -> Double {
                    if let c = cache { return Double(c.keys.data[k * c.keys.shape[1] + col * c.length + j]) }
                    return Double(qkv.data[(d + k) * n + col / s * s + j])
                }
                func value(_ k: Int, _ j: Int) -> Double {
                    if let c = cache { return Double(c.values.data[k * c.values.shape[1] + col * c.length + j]) }
                    return Double(qkv.data[(2 * d + k) * n + col / s * s + j])
                }
                let scores = (0..<count).map { j in (h * dh..<(h + 1) * dh).reduce(0.0) { $0 + Double(qkv.data[$1 * n + col]) * key($1, j) } * scale }
                let mx = scores.max()!, e = scores.map { exp($0 - mx) }, total = e.reduce(0, +)
                for k in (h * dh)..<((h + 1) * dh) {
                    out.data[k * n + col] = Float((0..<count).reduce(0.0) { $0 + e[$1] * value(k, $1) } / total)
                }
            }
        }
        return out
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
