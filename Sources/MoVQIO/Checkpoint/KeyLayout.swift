/// Maps checkpoint key names onto the canonical (diffusers) names that
/// `tensorSpecs` uses. One table for every layout we read:
/// - original Kandinsky / taming (`decoder.up.{i}.block.{j}`, `mid.attn_1.q`,
///   `nin_shortcut`, `norm_out`), whose decoder levels count from the bottom;
/// - older diffusers attention names (`query`, `key`, `value`, `proj_attn`);
/// - Kandinsky 3 style encoder norms wrapped in `.norm_layer`.
enum KeyLayout {
    /// Key prefixes of training-only tensors that are dropped on import.
    static let trainingOnlyPrefixes = ["loss.", "discriminator.", "lpips.", "perceptual_loss."]

    /// Whether the keys use the original (taming) layout.
    static func isOriginal(_ keys: [String]) -> Bool {
        keys.contains { $0.hasPrefix("decoder.up.") || $0.hasPrefix("encoder.down.") || $0.contains(".mid.block_1.") }
    }

    /// Renames all keys; returns the renamed tensors and the dropped keys.
    static func canonicalize(_ tensors: [CheckpointTensor]) throws -> (tensors: [CheckpointTensor], dropped: [String]) {
        let keys = tensors.map(\.name)
        let original = isOriginal(keys)
        let upLevels = Set(keys.compactMap { k -> Int? in
            let p = k.split(separator: ".")
            return p.count > 2 && p[0] == "decoder" && p[1] == "up" ? Int(p[2]) : nil
        }).count
        var out: [CheckpointTensor] = []
        var dropped: [String] = []
        var seen = Set<String>()
        for var t in tensors {
            if trainingOnlyPrefixes.contains(where: { t.name.hasPrefix($0) }) { dropped.append(t.name); continue }
            var name = original ? mapOriginal(t.name, upLevels: upLevels) : t.name
            name = renameLegacyAttention(name)
            guard seen.insert(name).inserted else { throw MoVQError.invalidCheckpoint("two keys map to '\(name)'") }
            t.name = name
            out.append(t)
        }
        // Norms stored as SpatialNorm-style `.norm_layer` without conv_y are plain GroupNorms.
        let names = Set(out.map(\.name))
        for i in out.indices {
            guard let r = out[i].name.range(of: ".norm_layer.") else { continue }
            let base = String(out[i].name[..<r.lowerBound])
            if !names.contains("\(base).conv_y.weight") {
                var plain = base.replacingOccurrences(of: ".spatial_norm", with: ".group_norm") + "." + out[i].name[r.upperBound...]
                if plain == out[i].name { plain = out[i].name }
                out[i].name = plain
            }
        }
        return (out, dropped)
    }

    static func mapOriginal(_ key: String, upLevels: Int) -> String {
        var p = key.split(separator: ".").map(String.init)
        guard p.count >= 2, p[0] == "encoder" || p[0] == "decoder" else { return key }
        var head = [p[0]]
        var rest: [String]
        var kind = ""  // "resnet" | "attention" | ""
        if p[1] == "down" || p[1] == "up", p.count >= 5, let i = Int(p[2]) {
            let level = p[1] == "up" ? upLevels - 1 - i : i
            head.append(p[1] == "up" ? "up_blocks" : "down_blocks")
            head.append(String(level))
            switch p[3] {
            case "block": head += ["resnets", p[4]]; kind = "resnet"; rest = Array(p[5...])
            case "attn": head += ["attentions", p[4]]; kind = "attention"; rest = Array(p[5...])
            case "upsample": head += ["upsamplers", "0"]; rest = Array(p[4...])
            case "downsample": head += ["downsamplers", "0"]; rest = Array(p[4...])
            default: rest = Array(p[3...])
            }
        } else if p[1] == "mid", p.count >= 3 {
            switch p[2] {
            case "block_1": head += ["mid_block", "resnets", "0"]; kind = "resnet"
            case "block_2": head += ["mid_block", "resnets", "1"]; kind = "resnet"
            case "attn_1": head += ["mid_block", "attentions", "0"]; kind = "attention"
            default: head += ["mid", p[2]]
            }
            rest = Array(p[3...])
        } else if p[1] == "norm_out" {
            head.append("conv_norm_out"); rest = Array(p[2...])
        } else {
            rest = Array(p[1...])
        }
        if kind == "resnet", rest.first == "nin_shortcut" { rest[0] = "conv_shortcut" }
        if kind == "attention", let first = rest.first {
            switch first {
            case "norm": rest[0] = ["norm_layer", "conv_y", "conv_b"].contains(rest.count > 1 ? rest[1] : "") ? "spatial_norm" : "group_norm"
            case "q": rest[0] = "to_q"
            case "k": rest[0] = "to_k"
            case "v": rest[0] = "to_v"
            case "proj_out": rest[0] = "to_out.0"
            default: break
            }
        }
        p = head + rest
        return p.joined(separator: ".")
    }

    static func renameLegacyAttention(_ name: String) -> String {
        let legacy = [".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."]
        for (old, new) in legacy where name.contains(".attentions.") && name.contains(old) {
            return name.replacingOccurrences(of: old, with: new)
        }
        return name
    }
}
