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

    /// The weight files a diffusers model folder may hold, in order of preference:
    /// safetensors before torch pickles, full precision before the fp16 variant.
    static let diffusersWeightFiles = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                                       "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"]

    /// Loads an autoencoder or a MaskGIT prior (told apart by its keys; a
    /// prior takes its architecture from `configPath` or `prior.json` beside it).
    /// `path` is a diffusers model folder (or a pipeline folder with a
    /// `movq/`, `vqvae/` or `vqmodel/` subfolder), a weights file
    /// (safetensors, torch zip `.ckpt`/`.pt`/`.bin`; a diffusers
    /// `config.json` beside it is read), an official MaskGIT flax checkpoint
    /// (tokenizer or transformer, `FlaxImporter`) or a packed `.mvq`. The format is
    /// told by the file's first bytes, not its name.
    public static func loadAny(path: String, configPath: String? = nil) throws -> Imported {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw MoVQError.io(path: path, reason: "no such file or folder")
        }
        var overrides: [ArchitectureInference.Overrides] = []
        var file = path
        var dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        if isDir.boolValue {
            // A diffusers model folder, or a pipeline folder with a movq/vqvae subfolder.
            dir = URL(fileURLWithPath: path)
            for sub in ["movq", "vqvae", "vqmodel"] where FileManager.default.fileExists(atPath: dir.appendingPathComponent(sub).path) {
                dir = dir.appendingPathComponent(sub); break
            }
            guard let weights = diffusersWeightFiles.first(where: { FileManager.default.fileExists(atPath: dir.appendingPathComponent($0).path) }) else {
                throw MoVQError.io(path: path, reason: "folder has none of \(diffusersWeightFiles.joined(separator: ", ")) (nor a movq/ or vqvae/ subfolder with one)")
            }
            file = dir.appendingPathComponent(weights).path
        }
        // The diffusers config beside the weights says what shapes cannot (group counts, eps).
        let besideConfig = dir.appendingPathComponent("config.json").path
        if besideConfig != file, FileManager.default.fileExists(atPath: besideConfig) {
            overrides.append(try .parse(try readFile(besideConfig), source: besideConfig))
        }
        if let configPath { overrides.append(try .parse(try readFile(configPath), source: configPath)) }
        let head = try MappedFile(path: file)
        let bytes = head.bytes
        func starts(_ prefix: [UInt8]) -> Bool { bytes.count >= prefix.count && Array(bytes[0..<prefix.count]) == prefix }
        if starts(PackedFormat.magic) { return .autoencoder(try fromPacked(file, overrides: overrides)) }
        let raw: [CheckpointTensor]
        if starts([0x50, 0x4B]) {
            raw = try TorchCheckpoint.read(path: file)
        } else if starts([0x80]) && bytes.count >= 2 && bytes[1] <= 5 {
            throw MoVQError.unsupported("\(file): a legacy (pre-1.6, non-zip) torch pickle; load it in Python and save it again with torch.save(state_dict, path), which writes the zip format")
        } else if let first = (0..<min(bytes.count, 64)).first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains(bytes[$0]) }), bytes[first] == UInt8(ascii: "{") {
            throw MoVQError.invalidInput("\(file) is a JSON file, not weights: give the folder that holds it and its weights (or pass it with --config)")
        } else if bytes.count >= 9, bytes[8] == UInt8(ascii: "{") {
            raw = try Safetensors.read(path: file)
        } else if FlaxCheckpoint.looksLike(bytes) {  // after safetensors: its length's first bytes can look like a msgpack map
            return try FlaxImporter.load(file, configPath: configPath)
        } else {
            throw MoVQError.invalidInput("\(file): not a checkpoint this tool reads (safetensors, a torch zip .ckpt/.pt/.bin, a diffusers folder, or a .mvq)")
        }
        if PriorImporter.isPrior(raw) { return .prior(try PriorImporter.assemble(raw, checkpoint: file, configPath: configPath)) }
        return .autoencoder(try assemble(raw, overrides: overrides))
    }

    /// A packed model as a checkpoint (to convert it to another precision):
    /// its weights widened to fp32, int8 scale companions left out.
    static func fromPacked(_ path: String, overrides: [ArchitectureInference.Overrides]) throws -> ImportedModel {
        let file = try PackedFile(path: path)
        let companions = Set(file.header.tensors.compactMap(\.scales))
        let raw = try file.header.tensors.filter { !companions.contains($0.name) }.map { e in
            CheckpointTensor(name: e.name, shape: e.shape, values: try file.floatArray(e.name, shape: e.shape))
        }
        // What shapes cannot show comes from the packed config (a --config still wins).
        guard let c = file.header.config else { throw MoVQError.unsupported("\(path): re-converting a \(file.header.kind) is not supported") }
        let own = ArchitectureInference.Overrides(norm_num_groups: c.normNumGroups, spatial_norm_groups: c.spatialNormGroups,
                                                  norm_eps: c.normEps)
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
        // 1x1 conv weights may be stored as Linear ([C, C]) or vice versa.
        let ordered = try matchSpecs(byName, tensorSpecs(for: config), trailingOnes: true)
        return ImportedModel(config: config, tensors: ordered, dropped: dropped, layout: layout)
    }
}
