import Foundation

/// A checkpoint mapped onto the canonical architecture, ready to pack.
public struct ImportedModel: Sendable {
    /// Inferred (and overridden) architecture.
    public var config: MoVQConfig
    /// Every tensor of `tensorSpecs(config)`, in that order, as fp32.
    public var tensors: [CheckpointTensor]
    /// Training-only keys that were dropped (e.g. `loss.*`).
    public var dropped: [String]
    /// "diffusers" or "original".
    public var layout: String
}

/// Reads diffusers folders / safetensors files and PyTorch zip checkpoints.
public enum CheckpointImporter {
    /// Loads `path` (a diffusers model folder, a `.safetensors` file, a
    /// torch `.ckpt`/`.pt`, or a packed `.mvq` to re-convert), with an optional JSON file of settings that
    /// shapes cannot reveal (`norm_num_groups`, `spatial_norm_groups`, `norm_eps`).
    public static func load(path: String, configPath: String? = nil) throws -> ImportedModel {
        switch try loadAny(path: path, configPath: configPath) {
        case .autoencoder(let m): return m
        case .prior: throw MoVQError.invalidInput("\(path) holds a MaskGIT prior, not a VQ autoencoder")
        }
    }

    /// What a checkpoint holds.
    public enum Imported: Sendable {
        case autoencoder(ImportedModel)
        case prior(ImportedPrior)
    }

    /// Loads an autoencoder or a MaskGIT prior (told apart by its keys; a
    /// prior takes its architecture from `configPath` or `prior.json` beside it).
    public static func loadAny(path: String, configPath: String? = nil) throws -> Imported {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw MoVQError.io(path: path, reason: "no such file or folder")
        }
        var overrides: [ArchitectureInference.Overrides] = []
        var file = path
        if isDir.boolValue {
            // A diffusers model folder, or a pipeline folder with a movq/vqvae subfolder.
            var dir = URL(fileURLWithPath: path)
            for sub in ["movq", "vqvae", "vqmodel"] where FileManager.default.fileExists(atPath: dir.appendingPathComponent(sub).path) {
                dir = dir.appendingPathComponent(sub); break
            }
            let st = dir.appendingPathComponent("diffusion_pytorch_model.safetensors").path
            guard FileManager.default.fileExists(atPath: st) else {
                throw MoVQError.io(path: path, reason: "folder has no diffusion_pytorch_model.safetensors")
            }
            file = st
            let cfg = dir.appendingPathComponent("config.json").path
            if FileManager.default.fileExists(atPath: cfg) {
                overrides.append(try .parse(try readFile(cfg), source: cfg))
            }
        }
        if let configPath { overrides.append(try .parse(try readFile(configPath), source: configPath)) }
        let head = try MappedFile(path: file)
        if head.bytes.count >= 8, Array(head.bytes[0..<8]) == PackedFormat.magic {
            return .autoencoder(try fromPacked(file, overrides: overrides))
        }
        let isZip = head.bytes.count >= 2 && head.bytes[0] == 0x50 && head.bytes[1] == 0x4B
        let raw = isZip ? try TorchCheckpoint.read(path: file) : try Safetensors.read(path: file)
        if PriorImporter.isPrior(raw) { return .prior(try PriorImporter.assemble(raw, checkpoint: file, configPath: configPath)) }
        return .autoencoder(try assemble(raw, overrides: overrides))
    }

    /// A packed model as a checkpoint (to convert it to another precision):
    /// its weights widened to fp32, int8 scale companions left out.
    static func fromPacked(_ path: String, overrides: [ArchitectureInference.Overrides]) throws -> ImportedModel {
        let file = try PackedFile(path: path)
        let companions = Set(file.header.tensors.compactMap(\.scales))
        let raw = try file.header.tensors.filter { !companions.contains($0.name) }.map { e in
            CheckpointTensor(name: e.name, shape: e.shape, values: Array(try file.floats(e.name, shape: e.shape)))
        }
        // What shapes cannot show comes from the packed config (a --config still wins).
        guard let c = file.header.config else { throw MoVQError.unsupported("\(path): re-converting a \(file.header.kind) is not supported") }
        let own = ArchitectureInference.Overrides(norm_num_groups: c.normNumGroups, spatial_norm_groups: c.spatialNormGroups,
                                                  norm_eps: c.normEps, layers_per_block: c.layersPerBlock,
                                                  mid_block_add_attention: c.midBlockAttention)
        var m = try assemble(raw, overrides: [own] + overrides)
        m.layout = "packed"
        return m
    }

    /// Maps raw checkpoint tensors to the canonical architecture, checking
    /// for unknown keys, missing tensors, shape mismatches and NaN/Inf.
    static func assemble(_ raw: [CheckpointTensor], overrides: [ArchitectureInference.Overrides]) throws -> ImportedModel {
        let layout = KeyLayout.isOriginal(raw.map(\.name)) ? "original" : "diffusers"
        let (tensors, dropped) = try KeyLayout.canonicalize(raw)
        var byName: [String: CheckpointTensor] = [:]
        for t in tensors { byName[t.name] = t }
        let config = try ArchitectureInference.infer(byName.mapValues(\.shape), overrides: overrides)
        let specs = tensorSpecs(for: config)
        let unknown = Set(byName.keys).subtracting(specs.map(\.name)).sorted()
        if !unknown.isEmpty { throw MoVQError.unknownKeys(unknown) }
        var ordered: [CheckpointTensor] = []
        for spec in specs {
            guard var t = byName[spec.name] else { throw MoVQError.missingTensor(spec.name) }
            if t.shape != spec.shape {
                // 1x1 conv weights stored as Linear ([C, C]) or vice versa.
                let strip = { (s: [Int]) -> [Int] in var s = s; while s.count > 2 && s.last == 1 { s.removeLast() }; return s }
                guard strip(t.shape) == strip(spec.shape) else {
                    throw MoVQError.shapeMismatch(tensor: spec.name, expected: spec.shape, found: t.shape)
                }
                t.shape = spec.shape
            }
            if t.values.contains(where: { !$0.isFinite }) { throw MoVQError.nonFiniteWeights(spec.name) }
            ordered.append(t)
        }
        return ImportedModel(config: config, tensors: ordered, dropped: dropped, layout: layout)
    }
}
