import Foundation

/// A MaskGIT prior checkpoint mapped onto `tensorSpecs(for: PriorConfig)`.
public struct ImportedPrior: Sendable {
    /// The architecture (from the checkpoint's `prior.json`).
    public var config: PriorConfig
    /// Every tensor of the specs, in order, as fp32.
    public var tensors: [CheckpointTensor]
    /// The decoder this prior's tokens are for (the config's optional
    /// `decoder` entry: a packed model path, relative to the prior file).
    public var decoder: String?
    /// The classifier-free guidance scale `movq sample` uses by default (config key `guidance`).
    public var guidance: Float?
    /// Sampling settings the packed file records for `movq sample` (metadata
    /// keys `steps`, `choice_temperature`; `null_class` "none" when the
    /// model has no unconditional class, so guidance is refused).
    public var sampling: [String: String] = [:]
}

/// Reads checkpoints of the reference transformer (`Tools/reference/maskgit_reference.py`).
public enum PriorImporter {
    /// Whether checkpoint keys look like a MaskGIT prior.
    static func isPrior(_ raw: [CheckpointTensor]) -> Bool {
        let names = Set(raw.map(\.name))
        return names.contains("pos_emb") && names.contains("cls_emb.weight")  // MaskGIT and GPT priors alike
    }

    /// The JSON beside a prior checkpoint: its architecture (what shapes
    /// cannot show: heads, norms, activation, token map) and its decoder.
    struct ConfigFile: Decodable {
        var config: PriorConfig
        var decoder: String?
        var guidance: Float?
        enum Keys: String, CodingKey { case decoder, guidance }
        init(from d: any Swift.Decoder) throws {
            config = try PriorConfig(from: d)
            let k = try d.container(keyedBy: Keys.self)
            decoder = try k.decodeIfPresent(String.self, forKey: .decoder)
            guidance = try k.decodeIfPresent(Float.self, forKey: .guidance)
        }
    }

    static func assemble(_ raw: [CheckpointTensor], checkpoint: String, configPath: String?) throws -> ImportedPrior {
        let path = configPath ?? URL(fileURLWithPath: checkpoint).deletingLastPathComponent().appendingPathComponent("prior.json").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw MoVQError.invalidInput("\(checkpoint) is a MaskGIT prior: give its architecture with --config (prior.json)")
        }
        let file: ConfigFile
        do { file = try JSONDecoder().decode(ConfigFile.self, from: try readFile(path)) } catch let e as MoVQError { throw e } catch {
            throw MoVQError.invalidInput("\(path): not a valid prior config (\(error))")
        }
        try file.config.validate()
        var byName: [String: CheckpointTensor] = [:]
        for t in raw { byName[t.name] = t }
        let tensors = try matchSpecs(byName, tensorSpecs(for: file.config))
        return ImportedPrior(config: file.config, tensors: tensors, decoder: file.decoder, guidance: file.guidance)
    }
}
