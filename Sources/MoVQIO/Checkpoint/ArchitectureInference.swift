import Foundation

/// Infers a `MoVQConfig` from canonical tensor names and shapes. Group
/// counts and epsilon cannot be seen in shapes: they come from a diffusers
/// `config.json` when present, a `--config` override, or the defaults
/// (32 groups, eps 1e-6).
enum ArchitectureInference {
    /// Settings that shapes cannot reveal, from JSON (diffusers key names).
    /// Everything else in a config (layers per block, attention placement,
    /// channels) is read from the tensors themselves, so other keys are ignored.
    struct Overrides: Decodable {
        var norm_num_groups: Int?
        var spatial_norm_groups: Int?
        var norm_eps: Float?

        static func parse(_ data: Data, source: String) throws -> Overrides {
            do { return try JSONDecoder().decode(Overrides.self, from: data) } catch {
                throw MoVQError.invalidInput("\(source): not a valid config JSON (\(error))")
            }
        }
    }

    static func infer(_ shapes: [String: [Int]], overrides: [Overrides]) throws -> MoVQConfig {
        func shape(_ n: String) throws -> [Int] {
            guard let s = shapes[n] else { throw MoVQError.missingTensor(n) }
            return s
        }
        func dim(_ n: String, _ i: Int) throws -> Int {
            let s = try shape(n)
            guard i < s.count else { throw MoVQError.invalidCheckpoint("tensor '\(n)' has shape \(s)") }
            return s[i]
        }
        func indices(_ prefix: String) -> [Int] {
            let found = Set(shapes.keys.compactMap { k -> Int? in
                guard k.hasPrefix(prefix) else { return nil }
                return Int(k.dropFirst(prefix.count).prefix { $0 != "." })
            })
            return found.sorted()
        }
        let upLevels = indices("decoder.up_blocks.")
        guard !upLevels.isEmpty, upLevels == Array(0..<upLevels.count) else {
            throw MoVQError.invalidCheckpoint("no decoder up blocks found (is this a MoVQ/VQGAN autoencoder?)")
        }
        let levels = upLevels.count
        let rev = try (0..<levels).map { try dim("decoder.up_blocks.\($0).resnets.0.conv2.weight", 0) }
        let decoderResnets = indices("decoder.up_blocks.0.resnets.").count
        let hasEncoder = shapes.keys.contains { $0.hasPrefix("encoder.") }
        var layers = decoderResnets - 1
        if hasEncoder { layers = indices("encoder.down_blocks.0.resnets.").count }
        let codebook = shapes["quantize.embedding.weight"]
        let vqEmbedDim = try dim("post_quant_conv.weight", 1)
        var c = MoVQConfig(
            blockOutChannels: rev.reversed(), layersPerBlock: layers,
            encoderAttention: (0..<levels).map { shapes["encoder.down_blocks.\($0).attentions.0.to_q.weight"] != nil },
            decoderAttention: (0..<levels).map { shapes["decoder.up_blocks.\($0).attentions.0.to_q.weight"] != nil },
            latentChannels: try dim("decoder.conv_in.weight", 1), vqEmbedDim: vqEmbedDim,
            numVQEmbeddings: codebook?[0] ?? 0, codebookDim: codebook.map { $0.count == 2 ? $0[1] : -1 } ?? vqEmbedDim)
        if let cb = codebook, cb.count != 2 { throw MoVQError.invalidCheckpoint("codebook has shape \(cb), expected [K, d]") }
        c.hasEncoder = hasEncoder
        c.inChannels = hasEncoder ? try dim("encoder.conv_in.weight", 1) : 3
        c.outChannels = try dim("decoder.conv_out.weight", 0)
        c.normType = shapes["decoder.conv_norm_out.conv_y.weight"] != nil ? .spatial : .group
        c.midBlockAttention = shapes["decoder.mid_block.attentions.0.to_q.weight"] != nil
        for o in overrides {
            if let g = o.norm_num_groups { c.normNumGroups = g }
            if let g = o.spatial_norm_groups { c.spatialNormGroups = g }
            if let e = o.norm_eps { c.normEps = e }
        }
        if hasEncoder && decoderResnets != layers + 1 {
            throw MoVQError.invalidCheckpoint("decoder has \(decoderResnets) resnets per level, encoder \(layers): expected one more in the decoder")
        }
        try c.validate()
        return c
    }
}
