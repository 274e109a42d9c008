import ArgumentParser
import Foundation
import MoVQ

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint (diffusers folder/.safetensors, or torch .ckpt/.pt) to a packed .mvq model.")

    @Argument(help: "Diffusers VQModel folder, .safetensors file, or PyTorch .ckpt/.pt.")
    var source: String
    @Option(name: .shortAndLong, help: "Output .mvq path.")
    var output: String
    @Option(help: "Weight precision: fp32 or fp16.")
    var precision: String = "fp32"
    @Option(help: "JSON with settings shapes cannot reveal (norm_num_groups, spatial_norm_groups, norm_eps).")
    var config: String?

    func run() throws {
        try reportingErrors {
            guard let p = Precision(rawValue: precision) else {
                throw MoVQError.invalidInput("unknown precision '\(precision)' (fp32, fp16, int8)")
            }
            let m = try Converter.convert(source: source, output: output, precision: p, configPath: config)
            let params = m.tensors.reduce(0) { $0 + $1.values.count }
            print("converted \(m.layout)-layout checkpoint: \(m.tensors.count) tensors, \(params) parameters" +
                  (m.dropped.isEmpty ? "" : ", dropped \(m.dropped.count) training-only keys"))
            print("config: channels \(m.config.blockOutChannels), layers \(m.config.layersPerBlock), latent \(m.config.vqEmbedDim)" +
                  " (\(m.config.channelsPerPosition) x \(m.config.codebookDim)), codebook \(m.config.numVQEmbeddings), norm \(m.config.normType.rawValue)")
            print("wrote \(output)")
        }
    }
}
