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
        guard case .autoencoder(let model) = imported else {
            guard case .prior(let p) = imported else { preconditionFailure() }
            let inputs = p.tensors.map { t in
                PackedTensorInput(name: t.name, shape: t.shape, values: t.values, dtype: precision.storage(for: t.name, shape: t.shape))
            }
            var meta = ["precision": precision.rawValue, "converter": "movq \(MoVQVersion.string)"]
            if let d = p.decoder { meta["decoder"] = d }
            if let g = p.guidance { meta["guidance"] = String(g) }
            let data = try PackedWriter.serialize(prior: p.config, tensors: inputs, metadata: meta)
            progress?(String(format: "writing %@ (%.1f MB)", output, Double(data.count) / 1e6))
            try writeFileAtomically(output, data)
            return imported
        }
        let inputs = model.tensors.map { t in
            PackedTensorInput(name: t.name, shape: t.shape, values: t.values, dtype: precision.storage(for: t.name, shape: t.shape))
        }
        let meta = ["source_layout": model.layout, "precision": precision.rawValue, "converter": "movq \(MoVQVersion.string)",
                    "dropped_keys": String(model.dropped.count)]
        let data = try PackedWriter.serialize(config: model.config, tensors: inputs, metadata: meta)
        progress?(String(format: "writing %@ (%.1f MB)", output, Double(data.count) / 1e6))
        try writeFileAtomically(output, data)
        return imported
    }
}
