/// The priors' transformers, described once: the MaskGIT forward and the
/// autoregressive step, as `ModelPlan`s over `[features][positions]` values
/// (every sequence of a batch side by side). The file's tensor list, the
/// SIMD and reference executors and the memory estimates come from here;
/// Docs/MASKGIT.md walks through the same structure.
package enum TransformerPlans {
    /// One MaskGIT forward over `sequences` token maps (class token +
    /// `height * width` positions each): logits per token channel, `[codes][columns]`.
    package static func maskGIT(_ c: PriorConfig, sequences b: Int) -> ModelPlan {
        let d = c.hidden, s = c.positions + 1
        var p = ModelPlan(input: columns(d, b * s))
        let tables = (0..<c.channels).map { ch -> String in
            let name = "tok_emb.\(ch).weight"; p.declare(name, [c.codes + 1, d]); return name
        }
        p.declare("cls_emb.weight", [c.classes + 1, d]); p.declare("pos_emb", [c.positions + 1, d])
        let embedding = EmbeddingWeights(tokenTables: tables, classTable: "cls_emb.weight", positionTable: "pos_emb", features: d)
        let embLN = c.isPostNorm ? layerNorm(&p, "emb_ln", c) : nil
        let layers = (0..<c.layers).map { layerWeights(&p, "layers.\($0)", c) }
        let finalLN = c.isPostNorm ? nil : layerNorm(&p, "final_ln", c)
        let headDense = linear(&p, "head.dense", d, d), headLN = layerNorm(&p, "head.ln", c)
        let heads = (0..<c.channels).map { ch -> LinearWeights in
            p.declare("head_bias.\(ch)", [c.codes])
            // Tied: the logits of channel ch are its token embeddings (codes only, not MASK) times h.
            return LinearWeights(weightName: tables[ch], biasName: "head_bias.\(ch)", inputs: d, outputs: c.codes, storedRows: c.codes + 1)
        }

        var x = p.input
        p.emit(.embed(embedding, output: x))
        if let e = embLN { x = norm(&p, e, x) }
        for l in layers {
            if c.isPostNorm {  // BERT: x = LN(x + attention(x)); x = LN(x + mlp(x))
                x = norm(&p, l.ln1, attention(&p, l, x, x, c, sequence: s))
                x = norm(&p, l.ln2, mlp(&p, l, x, x, c))
            } else {  // x = x + attention(LN(x)); x = x + mlp(LN(x))
                x = attention(&p, l, norm(&p, l.ln1, x), x, c, sequence: s)
                x = mlp(&p, l, norm(&p, l.ln2, x), x, c)
            }
        }
        if let f = finalLN { x = norm(&p, f, x) }
        // Head: logits[ch] = E_ch LN(gelu(dense(h))) + bias_ch.
        let h = apply(&p, headDense, x)
        p.emit(.gelu(h, rows: d, gated: false))
        let y = norm(&p, headLN, h)
        p.finish(outputs: heads.map { apply(&p, $0, y) })
        return p
    }

    /// One autoregressive step for `batch` sequences: each feeds one token
    /// (or its class token first) at the step's position, appends its keys
    /// and values to the plan's cache (`ModelPlan.state`, kept between
    /// steps) and gets next-token logits `[codes][batch]`.
    package static func gptStep(_ c: PriorConfig, batch b: Int) -> ModelPlan {
        let d = c.hidden, length = c.positions * c.channels + 1
        var p = ModelPlan(input: columns(d, b))
        p.declare("tok_emb.weight", [c.codes, d]); p.declare("cls_emb.weight", [c.classes + 1, d])
        p.declare("pos_emb", [length, d])
        let embedding = EmbeddingWeights(tokenTables: ["tok_emb.weight"], classTable: "cls_emb.weight", positionTable: "pos_emb", features: d)
        let layers = (0..<c.layers).map { layerWeights(&p, "layers.\($0)", c) }
        let finalLN = layerNorm(&p, "final_ln", c), head = linear(&p, "head", d, c.codes)

        var x = p.input
        p.emit(.embed(embedding, output: x))
        for l in layers {
            let cache = KeyValueCache(keys: p.addState(columns(d, b * length)), values: p.addState(columns(d, b * length)), length: length)
            x = attention(&p, l, norm(&p, l.ln1, x), x, c, sequence: 1, cache: cache)
            x = mlp(&p, l, norm(&p, l.ln2, x), x, c)
        }
        p.finish(outputs: [apply(&p, head, norm(&p, finalLN, x))])
        return p
    }

    /// Every tensor a prior config implies, in file order (from the plans).
    package static func tensorSpecs(_ c: PriorConfig) -> [TensorSpec] {
        c.isAutoregressive ? gptStep(c, batch: 1).weights : maskGIT(c, sequences: 1).weights
    }

    /// One layer's weights, declared in file order.
    struct Layer { var qkv: LinearWeights, out: LinearWeights, fc1: LinearWeights, fc2: LinearWeights, ln1: LayerNormWeights, ln2: LayerNormWeights }

    static func columns(_ features: Int, _ positions: Int) -> ModelPlan.Value {
        .init(channels: features, height: 1, width: positions, layout: .columns)
    }

    static func layerWeights(_ p: inout ModelPlan, _ prefix: String, _ c: PriorConfig) -> Layer {
        let d = c.hidden
        let qkv = linear(&p, "\(prefix).attn.qkv", d, 3 * d), out = linear(&p, "\(prefix).attn.out", d, d)
        let fc1 = linear(&p, "\(prefix).mlp.fc1", d, c.isGEGLU ? 2 * c.mlp : c.mlp), fc2 = linear(&p, "\(prefix).mlp.fc2", c.mlp, d)
        return Layer(qkv: qkv, out: out, fc1: fc1, fc2: fc2, ln1: layerNorm(&p, "\(prefix).ln1", c), ln2: layerNorm(&p, "\(prefix).ln2", c))
    }

    static func linear(_ p: inout ModelPlan, _ prefix: String, _ inputs: Int, _ outputs: Int) -> LinearWeights {
        let l = LinearWeights(weightName: "\(prefix).weight", biasName: "\(prefix).bias", inputs: inputs, outputs: outputs, storedRows: outputs)
        p.declare(l.weightName, [outputs, inputs]); p.declare(l.biasName, [outputs])
        return l
    }

    static func layerNorm(_ p: inout ModelPlan, _ prefix: String, _ c: PriorConfig) -> LayerNormWeights {
        let n = LayerNormWeights(prefix: prefix, features: c.hidden, rms: c.isRMSNorm, eps: c.normEps)
        p.declare(n.weightName, [c.hidden]); if let b = n.biasName { p.declare(b, [c.hidden]) }
        return n
    }

    static func apply(_ p: inout ModelPlan, _ l: LinearWeights, _ x: Int, residual: Int? = nil) -> Int {
        let y = p.addValue(columns(l.outputs, p.values[x].width))
        p.emit(.linear(l, input: x, output: y, residual: residual))
        return y
    }

    static func norm(_ p: inout ModelPlan, _ n: LayerNormWeights, _ x: Int) -> Int {
        let y = p.addValue(p.values[x])
        p.emit(.layerNorm(n, input: x, output: y))
        return y
    }

    /// `residual + out(attention(qkv(x)))`.
    static func attention(_ p: inout ModelPlan, _ l: Layer, _ x: Int, _ residual: Int, _ c: PriorConfig, sequence: Int,
                          cache: KeyValueCache? = nil) -> Int {
        let qkv = apply(&p, l.qkv, x)
        let a = p.addValue(p.values[x])
        p.emit(.selfAttention(heads: c.heads, qkv: qkv, output: a, sequence: sequence, cache: cache))
        return apply(&p, l.out, a, residual: residual)
    }

    /// `residual + fc2(gelu(fc1(x)))` (GEGLU: value rows times gelu of the gate rows).
    static func mlp(_ p: inout ModelPlan, _ l: Layer, _ x: Int, _ residual: Int, _ c: PriorConfig) -> Int {
        let h = apply(&p, l.fc1, x)
        p.emit(.gelu(h, rows: c.mlp, gated: c.isGEGLU))
        return apply(&p, l.fc2, h, residual: residual)
    }
}

/// A linear layer `y = W x + b` on `[features][positions]` values:
/// `weightName` `[storedRows, inputs]` (the first `outputs` rows are used:
/// tied embedding heads skip MASK's row), `biasName` `[outputs]`.
package struct LinearWeights: Equatable, Sendable {
    package var weightName: String, biasName: String
    package var inputs: Int, outputs: Int, storedRows: Int
}

/// LayerNorm (weight, bias) or RMSNorm (weight) over each position's features.
package struct LayerNormWeights: Equatable, Sendable {
    package var prefix: String
    package var features: Int, rms: Bool, eps: Float
    package var weightName: String { "\(prefix).weight" }
    package var biasName: String? { rms ? nil : "\(prefix).bias" }
}

/// Token, class and position embedding tables `[rows, features]`.
package struct EmbeddingWeights: Equatable, Sendable {
    /// One table per token channel (MaskGIT) or one (GPT).
    package var tokenTables: [String]
    package var classTable: String, positionTable: String
    package var features: Int
}

/// The autoregressive prior's key/value cache of one layer: two state
/// values of `features x (batch * length)`, sequence `i`'s keys at columns
/// `i * length ..< i * length + step + 1`.
package struct KeyValueCache: Equatable, Sendable {
    package var keys: Int, values: Int, length: Int
}
