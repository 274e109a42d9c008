/// One model described once: the ops a forward pass runs, in order, the
/// values (activations) they read and write, and the weights they use.
///
/// A plan is built from a config and an input size by one builder per
/// model family (`AutoencoderPlans`). Everything else derives from it: the
/// tensor list the converter and the file validation check (`weights`),
/// model FLOPs (`flops`), the activation arena (planned by the runtime from
/// value lifetimes, before anything runs) and the two executors (reference
/// and SIMD), which walk `ops` in order.
package struct ModelPlan: Sendable {
    /// Index of a value in `values`.
    package typealias ValueID = Int

    /// An activation of one image: `channels` planes of `height x width`.
    package struct Value: Equatable, Sendable {
        /// How an executor stores the value.
        package enum Layout: Sendable {
            /// A feature map the convolutions read (executors may pad it).
            case map
            /// Plain `[channels][height * width]` (SCN modulation maps).
            case plain
            /// `[channels][width]` with planes padded for the GEMM kernels
            /// (transformer activations: features x positions; `height` is 1).
            case columns
        }
        package var channels: Int, height: Int, width: Int
        package var layout: Layout
    }

    /// The values, indexed by `ValueID`.
    package private(set) var values: [Value] = []
    /// The ops in execution order.
    package private(set) var ops: [PlanOp] = []
    /// Every weight tensor the ops use, in declaration order (the file order).
    package private(set) var weights: [TensorSpec] = []
    /// Op counts after which a progress stage (a resolution level) is complete.
    package private(set) var stageEnds: [Int] = []
    /// The value the caller provides.
    package private(set) var input: ValueID = 0
    /// The values the plan produces (the autoencoder's image or latent; a
    /// prior's logits per token channel).
    package private(set) var outputs: [ValueID] = []
    /// The first output.
    package var output: ValueID { outputs[0] }
    /// Values that persist from one run to the next (the autoregressive
    /// prior's key/value cache): alive for the whole plan.
    package private(set) var state: [ValueID] = []

    /// An empty plan whose input is `input`.
    init(input: Value) { self.input = addValue(input) }

    mutating func addValue(_ v: Value) -> ValueID { values.append(v); return values.count - 1 }
    mutating func declare(_ name: String, _ shape: [Int]) { weights.append(TensorSpec(name: name, shape: shape)) }
    mutating func emit(_ op: PlanOp) { ops.append(op) }
    mutating func endStage() { stageEnds.append(ops.count) }
    mutating func finish(output v: ValueID) { outputs = [v] }
    mutating func finish(outputs v: [ValueID]) { outputs = v }
    mutating func addState(_ v: Value) -> ValueID { let id = addValue(v); state.append(id); return id }

    /// Model FLOPs of one image (multiply-add = 2): convolutions as direct
    /// convolutions (the upsample convolutions on the upsampled map), SCN's
    /// 1x1 convolutions at latent resolution, attention projections and
    /// matmuls. Norms and activations are memory-bound and not counted.
    package var flops: Double { ops.indices.reduce(0.0) { $0 + flops(ofOp: $1) } }

    /// Model FLOPs of op `i` for one image.
    package func flops(ofOp i: Int) -> Double {
        let op = ops[i]
        switch op {
        case .conv(let w, let x, _, _), .upsampleConv(let w, let x, _), .downsampleConv(let w, let x, _):
            let out = outputSize(op, input: values[x])
            return 2 * Double(w.inChannels * w.outChannels * w.kernel * w.kernel * out.height * out.width)
        case .averagePool: return 0
        case .modulation(let n, let zq, _, _):
            let z = values[zq]
            return 2 * 2 * Double(z.channels * n.channels * z.height * z.width)
        case .groupNorm: return 0
        case .attention(let a, let x, _, _):
            let n = Double(values[x].height * values[x].width), c = Double(a.channels)
            return 8 * c * c * n + 4 * n * n * c
        case .linear(let l, let x, _, _):
            return 2 * Double(l.inputs * l.outputs * values[x].width)
        case .selfAttention(_, let qkv, _, let s, let cache):
            let d = Double(values[qkv].channels / 3), columns = Double(values[qkv].width)
            // Per query: q.k and p.v over the sequence (MaskGIT) or the cached keys (at most `length`).
            return 4 * d * columns * Double(cache?.length ?? s)
        case .embed, .layerNorm, .gelu: return 0
        }
    }

    /// The spatial size an op's output has for an input of `v`.
    func outputSize(_ op: PlanOp, input v: Value) -> (height: Int, width: Int) {
        switch op {
        case .upsampleConv: return (2 * v.height, 2 * v.width)
        case .downsampleConv: return (v.height / 2, v.width / 2)
        case .averagePool: return ((v.height + 1) / 2, (v.width + 1) / 2)
        default: return (v.height, v.width)
        }
    }
}

/// One op of a `ModelPlan`. Values are `ModelPlan.ValueID`s; an op whose
/// output is its input runs in place.
package enum PlanOp: Sendable {
    /// `output = conv_kxk(input) + bias (+ residual)`, stride 1, "same" zero padding.
    case conv(ConvWeights, input: Int, output: Int, residual: Int?)
    /// `output = conv3x3(nearest2x(input)) + bias`.
    case upsampleConv(ConvWeights, input: Int, output: Int)
    /// `output = conv3x3 stride 2 of input padded by one row/column at the bottom/right` (+ bias).
    case downsampleConv(ConvWeights, input: Int, output: Int)
    /// `output` = 2x2 average, stride 2, TensorFlow "same" padding (the
    /// official MaskGIT tokenizer's downsampling): `ceil(h/2) x ceil(w/2)`,
    /// a window past an odd edge averaging only the pixels that exist.
    case averagePool(input: Int, output: Int)
    /// SCN modulation maps: `scale = conv_y(condition)`, `shift = conv_b(condition)`
    /// (1x1 convolutions at the condition's resolution).
    case modulation(NormWeights, condition: Int, scale: Int, shift: Int)
    /// `output = silu?(groupnorm(input) * gamma + beta) [* scale + shift]`, the
    /// modulation maps (if any) applied nearest-neighbour.
    case groupNorm(NormWeights, input: Int, output: Int, modulation: (scale: Int, shift: Int)?, silu: Bool)
    /// `output = residual + proj(softmax(q k^T / sqrt(C)) v)`, single head,
    /// q, k, v projections of `normalized`.
    case attention(AttentionWeights, normalized: Int, residual: Int, output: Int)
    /// `output` = token + class + position embeddings of the run's inputs
    /// (MaskGIT: the class token, then the sum of each position's channel
    /// tokens; GPT: the step's token or class token).
    case embed(EmbeddingWeights, output: Int)
    /// `output = W input + b (+ residual)` per position.
    case linear(LinearWeights, input: Int, output: Int, residual: Int?)
    /// LayerNorm / RMSNorm of each position's features.
    case layerNorm(LayerNormWeights, input: Int, output: Int)
    /// In place on the first `rows` features: `gelu(x)` (tanh form), or
    /// when `gated` (GEGLU) `x * gelu(gate)` with the gate in rows `rows..<2 rows`.
    case gelu(Int, rows: Int, gated: Bool)
    /// Multi-head attention from `qkv` (`[3 * features][columns]`: q, k, v)
    /// into `output`: within each `sequence` columns (MaskGIT), or with a
    /// `cache`, each column's query over its sequence's cached keys after
    /// appending its own (one autoregressive step).
    case selfAttention(heads: Int, qkv: Int, output: Int, sequence: Int, cache: KeyValueCache?)

    /// The values the op reads.
    package var inputs: [Int] {
        switch self {
        case .conv(_, let i, _, let r): return [i] + (r.map { [$0] } ?? [])
        case .upsampleConv(_, let i, _), .downsampleConv(_, let i, _), .averagePool(let i, _): return [i]
        case .modulation(_, let z, _, _): return [z]
        case .groupNorm(_, let i, _, let m, _): return [i] + (m.map { [$0.scale, $0.shift] } ?? [])
        case .attention(_, let n, let r, _): return [n, r]
        case .embed: return []
        case .linear(_, let i, _, let r): return [i] + (r.map { [$0] } ?? [])
        case .layerNorm(_, let i, _): return [i]
        case .gelu(let v, _, _): return [v]
        case .selfAttention(_, let qkv, _, _, let cache): return [qkv] + (cache.map { [$0.keys, $0.values] } ?? [])
        }
    }

    /// The values the op writes.
    package var outputs: [Int] {
        switch self {
        case .conv(_, _, let o, _), .upsampleConv(_, _, let o), .downsampleConv(_, _, let o), .groupNorm(_, _, let o, _, _),
             .attention(_, _, _, let o), .averagePool(_, let o):
            return [o]
        case .modulation(_, _, let s, let t): return [s, t]
        case .embed(_, let o), .linear(_, _, let o, _), .layerNorm(_, _, let o), .gelu(let o, _, _): return [o]
        case .selfAttention(_, _, let o, _, let cache): return [o] + (cache.map { [$0.keys, $0.values] } ?? [])
        }
    }
}

/// A convolution's weights: `<prefix>.weight [out, in, k, k]` and, unless
/// the conv has none (`hasBias` false: the bias is zero), `<prefix>.bias [out]`.
package struct ConvWeights: Equatable, Sendable {
    package var prefix: String
    package var inChannels: Int, outChannels: Int, kernel: Int
    package var hasBias: Bool = true
    package var weightName: String { "\(prefix).weight" }
    package var biasName: String { "\(prefix).bias" }
    package var weightShape: [Int] { [outChannels, inChannels, kernel, kernel] }
}

/// A GroupNorm's weights: affine `gamma`/`beta` (`<prefix>.weight`/`.bias`,
/// or `<prefix>.norm_layer.*` for SCN norms) and, for SCN, the `conv_y` and
/// `conv_b` 1x1 convolutions of the condition.
package struct NormWeights: Equatable, Sendable {
    package var prefix: String
    package var channels: Int, groups: Int, eps: Float
    /// SCN's modulation convolutions (nil for a plain GroupNorm).
    package var convY: ConvWeights?, convB: ConvWeights?
    package var gammaName: String { convY != nil ? "\(prefix).norm_layer.weight" : "\(prefix).weight" }
    package var betaName: String { convY != nil ? "\(prefix).norm_layer.bias" : "\(prefix).bias" }
}

/// A single-head spatial attention's four `[C, C]` projections
/// (`<prefix>.to_q`, `to_k`, `to_v`, `to_out.0`, each with a bias).
package struct AttentionWeights: Equatable, Sendable {
    package var prefix: String
    package var channels: Int
    package static let projections = ["to_q", "to_k", "to_v", "to_out.0"]
    package func weightName(_ projection: String) -> String { "\(prefix).\(projection).weight" }
    package func biasName(_ projection: String) -> String { "\(prefix).\(projection).bias" }
}
