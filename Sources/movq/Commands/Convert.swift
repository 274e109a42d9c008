import ArgumentParser
import Foundation
import MoVQ

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint (diffusers folder/.safetensors, torch .ckpt/.pt, a MaskGIT prior .pt, an official MaskGIT flax checkpoint, or a .mvq) to a packed .mvq model.")

    @Argument(help: ArgumentHelp("Checkpoint: a diffusers VQModel folder (or a pipeline folder with movq/ or vqvae/), a .safetensors file, a PyTorch .ckpt/.pt/.bin (an autoencoder, or a MaskGIT/GPT prior with its prior.json), an official MaskGIT flax checkpoint (tokenizer or transformer, e.g. maskgit_imagenet256_checkpoint), or a .mvq to re-convert.",
                                 discussion: "A diffusers config.json beside a weights file is read too. Folders may hold the fp16 variant or a .bin instead of safetensors."))
    var source: String
    @Option(name: .shortAndLong, help: "Output .mvq path.")
    var output: String
    @Option(help: "Weight precision: fp32, fp16 or int8.")
    var precision: String = "fp32"
    @Option(help: ArgumentHelp("Weight layout: kernel (fp32 weights as the kernels read them: loading maps them in place) or plain (row-major: smaller, packed at load; what --backend reference and re-conversion read).",
                               valueName: "kernel|plain"))
    var layout: String = "kernel"
    @Option(help: "JSON with settings shapes cannot reveal (autoencoder: norm_num_groups, spatial_norm_groups, norm_eps; prior: its whole config).")
    var config: String?
    @Option(help: "Prior: the packed decoder (tokenizer) its tokens are for, recorded in the file for `movq sample` (a path relative to the output).")
    var decoder: String?
    @Flag(name: .shortAndLong, help: "Print no progress.")
    var quiet = false

    func run() throws {
        try reportingErrors {
            guard let p = Precision(rawValue: precision) else {
                throw MoVQError.invalidInput("unknown precision '\(precision)' (fp32, fp16, int8)")
            }
            guard let l = LayoutChoice(rawValue: layout) else {
                throw MoVQError.invalidInput("unknown layout '\(layout)' (kernel, plain)")
            }
            let line = ProgressLine(quiet: quiet)
            let start = Date()
            let imported = try Converter.convertAny(source: source, output: output, precision: p, layout: l, configPath: config, decoder: decoder) {
                line.update(String(format: "%@  (%.1f s)", $0, Date().timeIntervalSince(start)))
            }
            line.finish()
            guard case .autoencoder(let m) = imported else {
                if case .prior(let pr) = imported {
                    let c = pr.config
                    print("converted \(c.isAutoregressive ? "autoregressive (gpt)" : "MaskGIT") prior: \(pr.tensors.count) tensors, \(pr.tensors.reduce(0) { $0 + $1.values.count }) parameters")
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
