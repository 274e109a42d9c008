import Foundation

/// Checkpoint -> packed file.
public enum Converter {
    /// Converts `source` to a packed model at `output` (written atomically).
    /// Returns the imported model for reporting.
    @discardableResult
    public static func convert(source: String, output: String, precision: Precision = .fp32, configPath: String? = nil) throws -> ImportedModel {
        guard case .autoencoder(let model) = try convertAny(source: source, output: output, precision: precision, configPath: configPath) else {
            throw MoVQError.invalidInput("\(source) holds a MaskGIT prior, not a VQ autoencoder")
        }
        return model
    }

    /// Converts an autoencoder or a MaskGIT prior checkpoint (see `CheckpointImporter.loadAny`).
    /// `progress` hears each stage as it starts ("reading", "packing", "writing").
    @discardableResult
    public static func convertAny(source: String, output: String, precision: Precision = .fp32, configPath: String? = nil,
                                  progress: ((String) -> Void)? = nil) throws -> CheckpointImporter.Imported {
        progress?("reading \(source)")
        let imported = try CheckpointImporter.loadAny(path: source, configPath: configPath)
        progress?("packing \(precision.rawValue) weights")
        func inputs(_ tensors: [CheckpointTensor]) -> [PackedTensorInput] {
            tensors.map { PackedTensorInput(name: $0.name, shape: $0.shape, values: $0.values, dtype: precision.storage(for: $0.name, shape: $0.shape)) }
        }
        var meta = ["precision": precision.rawValue, "converter": "movq \(MoVQVersion.string)"]
        let data: Data
        switch imported {
        case .autoencoder(let model):
            meta["source_layout"] = model.layout
            meta["dropped_keys"] = String(model.dropped.count)
            data = try PackedWriter.serialize(config: model.config, tensors: inputs(model.tensors), metadata: meta)
        case .prior(let p):
            if let d = p.decoder { meta["decoder"] = d }
            if let g = p.guidance { meta["guidance"] = String(g) }
            data = try PackedWriter.serialize(prior: p.config, tensors: inputs(p.tensors), metadata: meta)
        }
        progress?(String(format: "writing %@ (%.1f MB)", output, Double(data.count) / 1e6))
        try writeFileAtomically(output, data)
        return imported
    }
}
