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
    @discardableResult
    public static func convertAny(source: String, output: String, precision: Precision = .fp32, configPath: String? = nil) throws -> CheckpointImporter.Imported {
        let imported = try CheckpointImporter.loadAny(path: source, configPath: configPath)
        guard case .autoencoder(let model) = imported else {
            guard case .prior(let p) = imported else { preconditionFailure() }
            let inputs = p.tensors.map { t in
                PackedTensorInput(name: t.name, shape: t.shape, values: t.values, dtype: precision.storage(for: t.name, shape: t.shape))
            }
            var meta = ["precision": precision.rawValue, "converter": "movq \(MoVQVersion.string)"]
            if let d = p.decoder { meta["decoder"] = d }
            if let g = p.guidance { meta["guidance"] = String(g) }
            try writeFileAtomically(output, try PackedWriter.serialize(prior: p.config, tensors: inputs, metadata: meta))
            return imported
        }
        let inputs = model.tensors.map { t in
            PackedTensorInput(name: t.name, shape: t.shape, values: t.values, dtype: precision.storage(for: t.name, shape: t.shape))
        }
        let meta = ["source_layout": model.layout, "precision": precision.rawValue, "converter": "movq \(MoVQVersion.string)",
                    "dropped_keys": String(model.dropped.count)]
        let data = try PackedWriter.serialize(config: model.config, tensors: inputs, metadata: meta)
        try writeFileAtomically(output, data)
        return imported
    }
}
