import Foundation

/// Maps the official MaskGIT flax checkpoints (google-research/maskgit) onto
/// our architectures, told apart by their parameter trees:
/// - the tokenizer (`encoder/…`, `decoder/Conv_0/kernel`, `quantizer/codebook`)
///   onto `MoVQConfig.Architecture.maskgitVQGAN` (`MaskGITTokenizerPlans`);
/// - the transformer (`Embed_0/word_embeddings/embedding`, `TransformerLayer_i`,
///   `MlmLayer_0`) onto our post-LN MaskGIT prior (`TransformerPlans.maskGIT`).
///
/// Every dimension is read from the tree. Flax kernels are `[kh, kw, in, out]`
/// (convs), `[in, out]` (dense) and `[in, heads, head]` / `[heads, head, out]`
/// (attention); ours are `[out, in, ...]`. Errors name the flax path.
enum FlaxImporter {
    /// Settings the tree cannot show, from `--config` JSON.
    struct Overrides: Decodable {
        /// Tokenizer: GroupNorm groups and epsilon (flax's defaults: 32, 1e-6).
        var norm_num_groups: Int?
        var norm_eps: Float?
        /// Transformer: codebook size; the vocabulary is codes, then classes, then MASK (default 1024).
        var codes: Int?
    }

    static func load(_ path: String, configPath: String?) throws -> CheckpointImporter.Imported {
        var overrides = Overrides()
        if let configPath {
            do { overrides = try JSONDecoder().decode(Overrides.self, from: try readFile(configPath)) } catch let e as MoVQError { throw e } catch {
                throw MoVQError.invalidInput("\(configPath): not a valid config JSON (\(error))")
            }
        }
        let (raw, _) = try FlaxCheckpoint.read(path: path)
        var byPath: [String: CheckpointTensor] = [:]
        for t in raw { byPath[t.name] = t }
        if byPath["Embed_0/word_embeddings/embedding"] != nil { return .prior(try transformer(byPath, overrides)) }
        if byPath["decoder/Conv_0/kernel"] != nil || byPath["encoder/Conv_0/kernel"] != nil { return .autoencoder(try tokenizer(byPath, overrides)) }
        throw MoVQError.invalidCheckpoint("\(path): a flax checkpoint that is neither the MaskGIT tokenizer (decoder/Conv_0/kernel) nor the MaskGIT transformer (Embed_0/word_embeddings/embedding)")
    }

    // MARK: Tokenizer

    /// Our tensor name of a tokenizer parameter path: "/" -> ".", `kernel`/`scale` -> `weight`.
    static func tokenizerName(_ path: String) -> String {
        var parts = path.split(separator: "/").map(String.init)
        if let last = parts.last, last == "kernel" || last == "scale" { parts[parts.count - 1] = "weight" }
        return parts.joined(separator: ".")
    }

    static func tokenizer(_ byPath: [String: CheckpointTensor], _ o: Overrides) throws -> ImportedModel {
        func shape(_ p: String) throws -> [Int] {
            guard let t = byPath[p] else { throw MoVQError.missingTensor(p) }
            return t.shape
        }
        func kernel(_ p: String) throws -> [Int] {
            let s = try shape(p)
            guard s.count == 4 else { throw MoVQError.invalidCheckpoint("'\(p)' has shape \(s), expected a conv kernel [kh, kw, in, out]") }
            return s
        }
        func count(_ prefix: String) -> Int {
            var n = 0
            while byPath.keys.contains(where: { $0.hasPrefix("\(prefix)\(n)/") }) { n += 1 }
            return n
        }
        // Decoder: Conv_0, then one upsampling conv per level but the lowest, then the output conv.
        let decoderConvs = count("decoder/Conv_"), decoderResnets = count("decoder/ResBlock_")
        let levels = decoderConvs - 1
        guard levels >= 1, decoderResnets % (levels + 1) == 0, decoderResnets > 0 else {
            throw MoVQError.invalidCheckpoint("decoder has \(decoderConvs) convs and \(decoderResnets) ResBlocks: not the MaskGIT tokenizer's (levels + 1 convs, (levels + 1) x blocks ResBlocks)")
        }
        let blocks = decoderResnets / (levels + 1)
        // Level i's width is the output of its ResBlocks (the decoder walks the levels from the lowest).
        let channels = try (0..<levels).map { i in try kernel("decoder/ResBlock_\(blocks * (levels - i))/Conv_1/kernel")[3] }
        let embed = try kernel("decoder/Conv_0/kernel")[2]
        let codebook = byPath["quantizer/codebook"]?.shape
        if let cb = codebook, cb.count != 2 || cb[1] != embed {
            throw MoVQError.invalidCheckpoint("quantizer/codebook has shape \(cb), expected [codes, \(embed)]")
        }
        var c = MoVQConfig(blockOutChannels: channels, layersPerBlock: blocks, encoderAttention: Array(repeating: false, count: levels),
                           decoderAttention: Array(repeating: false, count: levels), latentChannels: embed, vqEmbedDim: embed,
                           numVQEmbeddings: codebook?[0] ?? 0, codebookDim: embed)
        c.architecture = .maskgitVQGAN
        c.midBlockAttention = false
        c.normType = .group
        c.hasEncoder = byPath.keys.contains { $0.hasPrefix("encoder/") }
        c.inChannels = c.hasEncoder ? try kernel("encoder/Conv_0/kernel")[2] : 3
        c.outChannels = try kernel("decoder/Conv_\(levels)/kernel")[3]
        c.normNumGroups = o.norm_num_groups ?? 32
        c.spatialNormGroups = c.normNumGroups
        c.normEps = o.norm_eps ?? 1e-6
        try c.validate()
        var ours: [String: CheckpointTensor] = [:], flaxPath: [String: String] = [:]
        for (p, t) in byPath {
            var t = t
            t.name = tokenizerName(p)
            if t.shape.count == 4 { t = transposed(t, [3, 2, 0, 1]) }  // [kh, kw, in, out] -> [out, in, kh, kw]
            ours[t.name] = t; flaxPath[t.name] = p
        }
        let tensors = try matchSpecs(ours, tensorSpecs(for: c), display: { flaxPath[$0] ?? $0 })
        return ImportedModel(config: c, tensors: tensors, dropped: [], layout: "flax")
    }

    // MARK: Transformer

    static func transformer(_ byPath: [String: CheckpointTensor], _ o: Overrides) throws -> ImportedPrior {
        func get(_ p: String, rank: Int) throws -> CheckpointTensor {
            guard let t = byPath[p] else { throw MoVQError.missingTensor(p) }
            guard t.shape.count == rank else { throw MoVQError.invalidCheckpoint("'\(p)' has shape \(t.shape), expected rank \(rank)") }
            return t
        }
        if byPath["Embed_0/embedding_hidden_mapping/kernel"] != nil {
            throw MoVQError.unsupported("Embed_0/embedding_hidden_mapping: a transformer whose embedding width differs from its hidden width")
        }
        let word = try get("Embed_0/word_embeddings/embedding", rank: 2), position = try get("Embed_0/position_embeddings/embedding", rank: 2)
        let (vocab, d) = (word.shape[0], word.shape[1])
        let codes = o.codes ?? 1024
        let classes = vocab - codes - 1
        guard codes >= 1, classes >= 0 else {
            throw MoVQError.invalidCheckpoint("Embed_0/word_embeddings has \(vocab) rows: fewer than \(codes) codes + MASK (set the codebook size with --config {\"codes\": N})")
        }
        let positions = position.shape[0] - 1, side = Int(Double(max(positions, 0)).squareRoot().rounded())
        guard positions >= 1, side * side == positions else {
            throw MoVQError.invalidCheckpoint("Embed_0/position_embeddings has \(position.shape[0]) rows: not a class token plus a square token map")
        }
        var layers = 0
        while byPath["TransformerLayer_\(layers)/Attention_0/self_attention/query/kernel"] != nil { layers += 1 }
        guard layers >= 1 else { throw MoVQError.missingTensor("TransformerLayer_0/Attention_0/self_attention/query/kernel") }
        let query0 = try get("TransformerLayer_0/Attention_0/self_attention/query/kernel", rank: 3)
        let heads = query0.shape[1]
        let mlp = try get("TransformerLayer_0/Mlp_0/intermediate_output/kernel", rank: 2).shape[1]
        let config = PriorConfig(codes: codes, channels: 1, height: side, width: side, classes: classes, hidden: d, heads: heads,
                                 layers: layers, mlp: mlp, norm: "layernorm", normPosition: "post", activation: "gelu", normEps: 1e-12)
        try config.validate()

        var ours: [String: CheckpointTensor] = [:], flaxPath: [String: String] = [:], used = Set<String>()
        func put(_ name: String, _ values: [Float], _ shape: [Int], from paths: [String]) {
            ours[name] = CheckpointTensor(name: name, shape: shape, values: values)
            flaxPath[name] = paths.joined(separator: " + "); used.formUnion(paths)
        }
        func rows(_ t: CheckpointTensor, _ r: Range<Int>) -> [Float] { Array(t.values[(r.lowerBound * d)..<(r.upperBound * d)]) }
        func copy(_ name: String, _ p: String, rank: Int) throws {
            let t = try get(p, rank: rank)
            put(name, t.values, t.shape, from: [p])
        }
        func dense(_ name: String, _ p: String) throws {  // kernel [in, out] -> weight [out, in]
            let k = try get("\(p)/kernel", rank: 2)
            put("\(name).weight", transposed(k, [1, 0]).values, [k.shape[1], k.shape[0]], from: ["\(p)/kernel"])
            try copy("\(name).bias", "\(p)/bias", rank: 1)
        }
        func norm(_ name: String, _ p: String) throws {
            try copy("\(name).weight", "\(p)/scale", rank: 1); try copy("\(name).bias", "\(p)/bias", rank: 1)
        }
        // One vocabulary (codes, classes, MASK = -1, the last row) becomes our token table (codes + MASK) and class table
        // (classes + the null class, which the official model does not have: zeros, and guidance is refused).
        put("tok_emb.0.weight", rows(word, 0..<codes) + rows(word, (vocab - 1)..<vocab), [codes + 1, d], from: [word.name])
        put("cls_emb.weight", rows(word, codes..<(codes + classes)) + [Float](repeating: 0, count: d), [classes + 1, d], from: [word.name])
        try copy("pos_emb", position.name, rank: 2)
        try norm("emb_ln", "Embed_0/embeddings_ln")
        for l in 0..<layers {
            let a = "TransformerLayer_\(l)/Attention_0", m = "TransformerLayer_\(l)/Mlp_0"
            // q, k, v kernels [d, heads, head] -> qkv rows (part, head, j) x d columns.
            var qkv: [Float] = [], qkvBias: [Float] = [], kernelPaths: [String] = [], biasPaths: [String] = []
            for part in ["query", "key", "value"] {
                let k = try get("\(a)/self_attention/\(part)/kernel", rank: 3), b = try get("\(a)/self_attention/\(part)/bias", rank: 2)
                guard k.shape == [d, heads, d / heads], b.shape == [heads, d / heads] else {
                    throw MoVQError.shapeMismatch(tensor: "\(a)/self_attention/\(part)/kernel", expected: [d, heads, d / heads], found: k.shape)
                }
                qkv += transposed(k, [1, 2, 0]).values; qkvBias += b.values; kernelPaths.append(k.name); biasPaths.append(b.name)
            }
            put("layers.\(l).attn.qkv.weight", qkv, [3 * d, d], from: kernelPaths)
            put("layers.\(l).attn.qkv.bias", qkvBias, [3 * d], from: biasPaths)
            let out = try get("\(a)/self_attention/out/kernel", rank: 3)  // [heads, head, d] -> [d, heads * head]
            guard out.shape == [heads, d / heads, d] else {
                throw MoVQError.shapeMismatch(tensor: out.name, expected: [heads, d / heads, d], found: out.shape)
            }
            put("layers.\(l).attn.out.weight", transposed(out, [2, 0, 1]).values, [d, d], from: [out.name])
            try copy("layers.\(l).attn.out.bias", "\(a)/self_attention/out/bias", rank: 1)
            try norm("layers.\(l).ln1", "\(a)/attention_output_ln")
            try dense("layers.\(l).mlp.fc1", "\(m)/intermediate_output")
            try dense("layers.\(l).mlp.fc2", "\(m)/layer_output")
            try norm("layers.\(l).ln2", "\(m)/layer_output_ln")
        }
        try dense("head.dense", "MlmLayer_0/mlm_dense")
        try norm("head.ln", "MlmLayer_0/mlm_ln")
        let bias = try get("MlmLayer_0/mlm_bias/bias", rank: 1)
        guard bias.shape == [vocab] else { throw MoVQError.shapeMismatch(tensor: bias.name, expected: [vocab], found: bias.shape) }
        put("head_bias.0", Array(bias.values[0..<codes]), [codes], from: [bias.name])
        let unknown = Set(byPath.keys).subtracting(used).sorted()
        if !unknown.isEmpty { throw MoVQError.unknownKeys(unknown) }
        let tensors = try matchSpecs(ours, tensorSpecs(for: config), display: { flaxPath[$0] ?? $0 })
        // The official loop's defaults (inference.py / parallel_decode.py); its vocabulary has no null class.
        return ImportedPrior(config: config, tensors: tensors, decoder: nil, guidance: nil,
                             sampling: ["steps": "12", "choice_temperature": "4.5", "null_class": "none"])
    }

    /// `t` with its axes permuted: output axis `i` is input axis `axes[i]`.
    static func transposed(_ t: CheckpointTensor, _ axes: [Int]) -> CheckpointTensor {
        let rank = t.shape.count
        let outShape = axes.map { t.shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * t.shape[i + 1] }
        let strides = axes.map { inStrides[$0] }
        var out = [Float](repeating: 0, count: t.values.count)
        var index = [Int](repeating: 0, count: rank)
        t.values.withUnsafeBufferPointer { src in
            for o in out.indices {
                var s = 0
                for i in 0..<rank { s += index[i] * strides[i] }
                out[o] = src[s]
                var i = rank - 1
                while i >= 0 { index[i] += 1; if index[i] < outShape[i] { break }; index[i] = 0; i -= 1 }
            }
        }
        return CheckpointTensor(name: t.name, shape: outShape, values: out)
    }
}
