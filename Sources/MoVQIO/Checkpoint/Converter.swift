import Foundation

/// Checkpoint -> packed file.
public enum Converter {
    /// Converts `source` to a packed model at `output` (written atomically).
    /// Returns the imported model for reporting.
    @discardableResult
    public static func convert(source: String, output: String, precision: Precision = .fp32, layout: LayoutChoice = .kernel,
                               configPath: String? = nil) throws -> ImportedModel {
        guard case .autoencoder(let model) = try convertAny(source: source, output: output, precision: precision, layout: layout,
                                                            configPath: configPath) else {
            throw MoVQError.invalidInput("\(source) holds a MaskGIT prior, not a VQ autoencoder")
        }
        return model
    }

    /// Converts an autoencoder or a MaskGIT prior checkpoint (see `CheckpointImporter.loadAny`).
    /// `layout`: `.kernel` stores each fp32 weight in the layout its kernel
    /// reads (`ModelPlan.kernelLayouts`), `.plain` everything row-major.
    /// `progress` hears each stage as it starts ("reading", "packing", "writing").
    @discardableResult
    /// `decoder`: for a prior, the packed decoder its tokens are for (recorded in the file; overrides the checkpoint's own).
    public static func convertAny(source: String, output: String, precision: Precision = .fp32, layout: LayoutChoice = .kernel,
                                  configPath: String? = nil, decoder: String? = nil,
                                  progress: ((String) -> Void)? = nil) throws -> CheckpointImporter.Imported {
        progress?("reading \(source)")
        let imported = try CheckpointImporter.loadAny(path: source, configPath: configPath)
        if decoder != nil, case .autoencoder = imported { throw MoVQError.invalidInput("--decoder applies to priors; \(source) is an autoencoder") }
        progress?("packing \(precision.rawValue) weights")
        let kernelLayouts = layout == .kernel ? imported.kernelLayouts : [:]
        func inputs(_ tensors: [CheckpointTensor]) -> [PackedTensorInput] {
            tensors.map {
                let dtype = precision.storage(for: $0.name, shape: $0.shape)
                // int8 Winograd weights are stored requantized in the Winograd domain (s8 forms); fp32 ones in their kernel layout.
                let kernel = kernelLayouts[$0.name]
                let layout = dtype == .f32 ? kernel : dtype == .i8 ? kernel?.byteForm : nil
                return PackedTensorInput(name: $0.name, shape: $0.shape, values: $0.values, dtype: dtype, layout: layout ?? .plain)
            }
        }
        var meta = ["precision": precision.rawValue, "layout": layout.rawValue, "converter": "movq \(MoVQVersion.string)"]
        let data: Data
        switch imported {
        case .autoencoder(let model):
            meta["source_layout"] = model.layout
            meta["dropped_keys"] = String(model.dropped.count)
            data = try PackedWriter.serialize(config: model.config, tensors: inputs(model.tensors), metadata: meta)
        case .prior(let p):
            if let d = decoder ?? p.decoder { meta["decoder"] = d }
            if let g = p.guidance { meta["guidance"] = String(g) }
            meta.merge(p.sampling) { _, new in new }
            data = try PackedWriter.serialize(prior: p.config, tensors: inputs(p.tensors), metadata: meta)
        }
        progress?(String(format: "writing %@ (%.1f MB)", output, Double(data.count) / 1e6))
        try writeFileAtomically(output, data)
        return imported
    }
}

extension CheckpointImporter.Imported {
    /// The kernel layout of each weight, from the model's plans (`ModelPlan.kernelLayouts`).
    var kernelLayouts: [String: TensorLayout] {
        switch self {
        case .autoencoder(let m):
            let c = m.config
            var layouts = AutoencoderPlans.decoder(c, latentHeight: 1, latentWidth: 1).kernelLayouts
            if c.hasEncoder {
                let f = c.downsampleFactor
                layouts.merge(AutoencoderPlans.encoder(c, height: f, width: f).kernelLayouts) { first, _ in first }
            }
            return layouts
        case .prior(let p):
            let c = p.config
            return (c.isAutoregressive ? TransformerPlans.gptStep(c, batch: 1) : TransformerPlans.maskGIT(c, sequences: 1)).kernelLayouts
        }
    }
}
