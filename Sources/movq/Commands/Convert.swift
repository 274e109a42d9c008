import ArgumentParser
import Foundation
import MoVQ

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint (diffusers folder/.safetensors, torch .ckpt/.pt, a MaskGIT prior .pt, or a .mvq) to a packed .mvq model.")

    @Argument(help: "Diffusers VQModel folder, .safetensors file, or PyTorch .ckpt/.pt.")
    var source: String
    @Option(name: .shortAndLong, help: "Output .mvq path.")
    var output: String
    @Option(help: "Weight precision: fp32 or fp16.")
    var precision: String = "fp32"
    @Option(help: "JSON with settings shapes cannot reveal (autoencoder: norm_num_groups, spatial_norm_groups, norm_eps; prior: its whole config).")
    var config: String?

    func run() throws {
        try reportingErrors {
            guard let p = Precision(rawValue: precision) else {
                throw MoVQError.invalidInput("unknown precision '\(precision)' (fp32, fp16, int8)")
            }
            let imported = try Converter.convertAny(source: source, output: output, precision: p, configPath: config)
            guard case .autoencoder(let m) = imported else {
                if case .prior(let pr) = imported {
                    let c = pr.config
                    print("converted MaskGIT prior: \(pr.tensors.count) tensors, \(pr.tensors.reduce(0) { $0 + $1.values.count }) parameters")
                    print("config: \(c.layers) layers, hidden \(c.hidden), \(c.heads) heads, tokens \(c.height)x\(c.width)x\(c.channels) of \(c.codes) codes, \(c.classes) classes")
                }
                print("wrote \(output)")
                return
            }
            let params = m.tensors.reduce(0) { $0 + $1.values.count }
            print("converted \(m.layout)-layout checkpoint: \(m.tensors.count) tensors, \(params) parameters" +
                  (m.dropped.isEmpty ? "" : ", dropped \(m.dropped.count) training-only keys"))
            print("config: channels \(m.config.blockOutChannels), layers \(m.config.layersPerBlock), latent \(m.config.vqEmbedDim)" +
                  " (\(m.config.channelsPerPosition) x \(m.config.codebookDim)), codebook \(m.config.numVQEmbeddings), norm \(m.config.normType.rawValue)")
            print("wrote \(output)")
        }
    }
}
