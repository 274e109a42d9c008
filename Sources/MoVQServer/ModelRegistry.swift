import Foundation
import MoVQ
import MoVQDemo

/// The models a server holds, loaded (mmapped, checksums verified) and
/// warmed once at start. Requests name them; no request names a path.
public final class ModelRegistry: @unchecked Sendable {
    /// A loaded prior and the decoder its tokens are for.
    public enum Prior: Sendable {
        case maskgit(MaskGITPrior), gpt(GPTPrior)
        var config: PriorConfig { switch self { case .maskgit(let p): return p.config; case .gpt(let p): return p.config } }
    }

    /// Decoders by name.
    public private(set) var decoders: [String: MoVQModel] = [:]
    /// Priors by name, with their decoder's name.
    public private(set) var priors: [String: (prior: Prior, decoder: String)] = [:]
    /// Seconds each model took to load and warm.
    public private(set) var loadSeconds: [String: Double] = [:]
    /// Names in load order.
    public private(set) var names: [String] = []

    /// Loads `models` (or the demo pair when empty) with `threads` threads.
    public init(models: [(name: String, path: String)], threads: Int) throws {
        let list = models.isEmpty ? [("demo", try DemoAssets.model()), ("demo-prior", try DemoAssets.prior())] : models
        var priorFiles: [(String, String, PriorConfig)] = []
        for (name, path) in list {
            guard decoders[name] == nil, !priorFiles.contains(where: { $0.0 == name }) else { throw MoVQError.invalidInput("model name '\(name)' given twice") }
            let header = try PackedFile(path: path, verifyChecksums: false).header
            if let c = header.prior { priorFiles.append((name, path, c)); continue }
            let t0 = Date()
            let m = try MoVQModel(contentsOf: path)
            _ = try m.decode(latent: Tensor(zeros: [1, m.config.vqEmbedDim, 1, 1]), threads: threads)  // warm: touch the packed weights
            decoders[name] = m; names.append(name); loadSeconds[name] = Date().timeIntervalSince(t0)
        }
        for (name, path, c) in priorFiles {
            let t0 = Date()
            let prior: Prior, named: String?
            if c.isAutoregressive {
                let p = try GPTPrior(contentsOf: path); prior = .gpt(p); named = p.decoderPath
            } else {
                let p = try MaskGITPrior(contentsOf: path); prior = .maskgit(p); named = p.decoderPath
            }
            // Its decoder: the one the file names (loaded if not yet), else the only decoder loaded.
            var decoder: String
            if let named {
                let canonical = URL(fileURLWithPath: named).standardizedFileURL.path
                if let hit = list.first(where: { URL(fileURLWithPath: $0.1).standardizedFileURL.path == canonical && decoders[$0.0] != nil }) {
                    decoder = hit.0
                } else {
                    decoder = "\(name)-decoder"
                    decoders[decoder] = try MoVQModel(contentsOf: named); names.append(decoder)
                }
            } else if decoders.count == 1 {
                decoder = decoders.keys.first!
            } else {
                throw MoVQError.invalidInput("prior '\(name)' names no decoder and \(decoders.count) decoders are loaded: load exactly one, or convert the prior with a decoder")
            }
            let d = decoders[decoder]!
            guard d.config.channelsPerPosition == c.channels, d.config.numVQEmbeddings == c.codes else {
                throw MoVQError.invalidInput("decoder '\(decoder)' has \(d.config.channelsPerPosition) x \(d.config.numVQEmbeddings) codes, prior '\(name)' \(c.channels) x \(c.codes)")
            }
            if case .maskgit(let p) = prior {  // warm: one forward
                _ = try p.logits(tokens: [Int32](repeating: Int32(c.codes), count: c.positions * c.channels), classes: [c.classes], threads: threads)
            }
            _ = try d.decode(latent: Tensor(zeros: [1, d.config.vqEmbedDim, c.height, c.width]), threads: threads)
            priors[name] = (prior, decoder); names.append(name); loadSeconds[name] = Date().timeIntervalSince(t0)
        }
    }

    /// `GET /v1/models`: every model's name, kind, precision, sizes and config.
    func describe() -> [[String: Any]] {
        names.map { name in
            if let m = decoders[name] {
                let c = m.config
                return ["id": name, "kind": "decoder", "precision": m.weightPrecision.rawValue, "file_bytes": m.file.fileSize,
                        "config": ["latent_channels": c.vqEmbedDim, "codes": c.numVQEmbeddings, "indices_per_position": c.channelsPerPosition,
                                   "downsample_factor": c.downsampleFactor, "has_encoder": c.hasEncoder, "out_channels": c.outChannels]]
            }
            let (p, decoder) = priors[name]!
            let c = p.config
            return ["id": name, "kind": c.isAutoregressive ? "autoregressive-prior" : "maskgit-prior", "decoder": decoder,
                    "config": ["classes": c.classes, "codes": c.codes, "channels": c.channels, "height": c.height, "width": c.width,
                               "hidden": c.hidden, "layers": c.layers]]
        }
    }
}
