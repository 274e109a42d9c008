/// Looks up a weight by canonical name and expected shape.
typealias WeightLookup = (_ name: String, _ shape: [Int]) throws -> UnsafeBufferPointer<Float>

/// A convolution with its weights.
struct Conv2DLayer: @unchecked Sendable {
    let geometry: Conv2DGeometry
    /// fp32 weights (widened from fp16/int8 files).
    let weight: UnsafeBufferPointer<Float>
    let bias: UnsafeBufferPointer<Float>
    /// Per-output-channel scales when the file stores the weight as int8
    /// (`weight = q * scales[o]` exactly), else nil.
    let int8Scales: UnsafeBufferPointer<Float>?

    init(weight: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>, geometry: Conv2DGeometry,
         int8Scales: UnsafeBufferPointer<Float>? = nil) {
        self.weight = weight; self.bias = bias; self.geometry = geometry; self.int8Scales = int8Scales
    }

    init(_ prefix: String, _ g: Conv2DGeometry, _ w: WeightLookup) throws {
        geometry = g
        weight = try w("\(prefix).weight", [g.outChannels, g.inChannels, g.kernel, g.kernel])
        bias = try w("\(prefix).bias", [g.outChannels])
        int8Scales = try? w(Int8Weights.scaleName("\(prefix).weight"), [g.outChannels])  // present only in int8 files
    }

    /// The int8 values and scales of an int8-stored weight, recovered
    /// exactly from `weight = q * scale` (nil for fp32/fp16 weights).
    var int8Weights: (q: [Int8], scales: [Float])? {
        guard let s = int8Scales else { return nil }
        return (Int8Weights.recover(weight, scales: s), Array(s))
    }

    func callAsFunction(_ x: Tensor, residual: Tensor? = nil, _ ctx: ExecutionContext) -> Tensor {
        Conv2DReference.forward(x, weight: weight, bias: bias, geometry: geometry, residual: residual, parallelism: ctx.parallelism)
    }
}

/// GroupNorm, optionally modulated by z_q (SCN), optionally followed by SiLU.
struct NormLayer: @unchecked Sendable {
    let gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>
    let groups: Int, eps: Float
    /// conv_y and conv_b (1x1, z_q channels -> C) for spatial norms.
    let convY: Conv2DLayer?, convB: Conv2DLayer?

    init(_ prefix: String, channels: Int, spatial: Bool, config c: MoVQConfig, _ w: WeightLookup) throws {
        eps = c.normEps
        if spatial {
            gamma = try w("\(prefix).norm_layer.weight", [channels]); beta = try w("\(prefix).norm_layer.bias", [channels])
            let g = Conv2DGeometry(inChannels: c.vqEmbedDim, outChannels: channels, kernel: 1)
            convY = try Conv2DLayer("\(prefix).conv_y", g, w); convB = try Conv2DLayer("\(prefix).conv_b", g, w)
            groups = c.spatialNormGroups
        } else {
            gamma = try w("\(prefix).weight", [channels]); beta = try w("\(prefix).bias", [channels])
            convY = nil; convB = nil
            groups = c.normNumGroups
        }
    }

    func callAsFunction(_ x: Tensor, zq: Tensor?, silu: Bool, _ ctx: ExecutionContext) -> Tensor {
        var mod: SpatialModulation? = nil
        if let cy = convY, let cb = convB, let zq {
            // 1x1 convs at latent resolution; the norm maps them nearest-neighbour.
            mod = SpatialModulation(scale: cy(zq, ctx), shift: cb(zq, ctx))
        }
        return GroupNormReference.forward(x, gamma: gamma, beta: beta, groups: groups, eps: eps,
                                          modulation: mod, silu: silu, parallelism: ctx.parallelism)
    }
}

/// `shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))`.
struct ResnetBlock: @unchecked Sendable {
    let norm1: NormLayer, conv1: Conv2DLayer, norm2: NormLayer, conv2: Conv2DLayer
    let shortcut: Conv2DLayer?

    init(_ p: String, in i: Int, out o: Int, spatial: Bool, config c: MoVQConfig, _ w: WeightLookup) throws {
        norm1 = try NormLayer("\(p).norm1", channels: i, spatial: spatial, config: c, w)
        conv1 = try Conv2DLayer("\(p).conv1", Conv2DGeometry(inChannels: i, outChannels: o, kernel: 3), w)
        norm2 = try NormLayer("\(p).norm2", channels: o, spatial: spatial, config: c, w)
        conv2 = try Conv2DLayer("\(p).conv2", Conv2DGeometry(inChannels: o, outChannels: o, kernel: 3), w)
        shortcut = i == o ? nil : try Conv2DLayer("\(p).conv_shortcut", Conv2DGeometry(inChannels: i, outChannels: o, kernel: 1), w)
    }

    func callAsFunction(_ x: Tensor, zq: Tensor?, _ ctx: ExecutionContext) -> Tensor {
        var h = conv1(norm1(x, zq: zq, silu: true, ctx), ctx)
        h = norm2(h, zq: zq, silu: true, ctx)
        let skip = shortcut.map { $0(x, ctx) } ?? x
        return conv2(h, residual: skip, ctx)
    }
}

/// Single-head spatial self-attention with residual.
struct AttentionBlock: @unchecked Sendable {
    let norm: NormLayer
    let weights: AttentionWeights
    var channels: Int { norm.gamma.count }

    init(_ p: String, channels ch: Int, spatial: Bool, config c: MoVQConfig, _ w: WeightLookup) throws {
        norm = try NormLayer(spatial ? "\(p).spatial_norm" : "\(p).group_norm", channels: ch, spatial: spatial, config: c, w)
        func lin(_ n: String) throws -> (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>) {
            (try w("\(p).\(n).weight", [ch, ch]), try w("\(p).\(n).bias", [ch]))
        }
        let q = try lin("to_q"), k = try lin("to_k"), v = try lin("to_v"), o = try lin("to_out.0")
        weights = AttentionWeights(q: q.0, qBias: q.1, k: k.0, kBias: k.1, v: v.0, vBias: v.1, out: o.0, outBias: o.1)
    }

    func callAsFunction(_ x: Tensor, zq: Tensor?, _ ctx: ExecutionContext) -> Tensor {
        let n = norm(x, zq: zq, silu: false, ctx)
        return AttentionReference.forward(residual: x, normalized: n, weights: weights, parallelism: ctx.parallelism)
    }
}

/// Resnet, attention, resnet at the lowest resolution.
struct MidBlock: @unchecked Sendable {
    let resnet0: ResnetBlock, attention: AttentionBlock?, resnet1: ResnetBlock

    init(_ p: String, channels ch: Int, spatial: Bool, config c: MoVQConfig, _ w: WeightLookup) throws {
        resnet0 = try ResnetBlock("\(p).mid_block.resnets.0", in: ch, out: ch, spatial: spatial, config: c, w)
        attention = c.midBlockAttention ? try AttentionBlock("\(p).mid_block.attentions.0", channels: ch, spatial: spatial, config: c, w) : nil
        resnet1 = try ResnetBlock("\(p).mid_block.resnets.1", in: ch, out: ch, spatial: spatial, config: c, w)
    }

    func callAsFunction(_ x: Tensor, zq: Tensor?, _ ctx: ExecutionContext) -> Tensor {
        var h = resnet0(x, zq: zq, ctx)
        if let a = attention { h = a(h, zq: zq, ctx) }
        return resnet1(h, zq: zq, ctx)
    }
}

/// Per-call execution settings.
public struct ExecutionContext: Sendable {
    /// Threads for the kernels.
    public var parallelism: Parallelism
    public init(threads: Int) { parallelism = Parallelism(threads: threads) }
}
