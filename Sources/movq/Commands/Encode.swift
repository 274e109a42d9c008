import ArgumentParser
import Foundation
import MoVQ
import MoVQDemo

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Encode PNG images to an index map [B, c, h, w] (int64 .npy).")

    @Argument(help: "[MODEL.mvq] IMG.png... (default model: the embedded demo model).")
    var paths: [String]
    @Option(name: .shortAndLong, help: "Output index map .npy.")
    var output: String
    @Option(help: "Also write the float latent (before quantization) to this .npy.")
    var latentOutput: String?
    @OptionGroup var fit: ImageFitOptions
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            let (path, inputs) = try DemoAssets.modelAndInputs(paths)
            guard !inputs.isEmpty else { throw MoVQError.invalidInput("no input images") }
            guard output.hasSuffix(".npy") else { throw MoVQError.invalidInput("output \(output) must end in .npy") }
            let m = try compute.openModel(path)
            let x = try ImageConversion.tensor(from: try readImages(inputs, for: m, fit: fit, threads: compute.threads), channels: m.config.inChannels)
            let line = compute.progress
            let z = try m.encode(images: x, threads: compute.threads, progress: line.handler())
            line.finish()
            let idx = try m.quantize(latent: z, threads: compute.threads)
            var files = [(path: output, data: NPY.encode(shape: idx.shape, int64: idx.values.map { Int64($0) }))]
            if let latentOutput { files.append((latentOutput, NPY.encode(shape: z.shape, float32: z.data))) }
            try writeOutputs(files)
        }
    }
}
