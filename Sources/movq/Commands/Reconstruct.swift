import ArgumentParser
import Foundation
import MoVQ
import MoVQDemo

struct Reconstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode, quantize and decode images; print PSNR. With no arguments, runs the embedded demo model on its demo images.")

    @Argument(help: "[MODEL.mvq] [IN.png...] (defaults: the embedded demo model and images).")
    var paths: [String] = []
    @Option(name: .shortAndLong, help: "Output PNG; with several inputs, a grid (top: inputs, bottom: reconstructions).")
    var output: String = "reconstruction.png"
    @OptionGroup var fit: ImageFitOptions
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            var (path, inputs) = try DemoAssets.modelAndInputs(paths)
            if inputs.isEmpty { inputs = try DemoAssets.images() }
            guard !inputs.isEmpty else { throw MoVQError.invalidInput("no input images") }
            guard output.hasSuffix(".png") else { throw MoVQError.invalidInput("output \(output) must end in .png") }
            let m = try compute.openModel(path)
            let originals = try readImages(inputs, for: m, fit: fit, threads: compute.threads)
            let x = try ImageConversion.tensor(from: originals, channels: m.config.inChannels)
            let start = Date()
            let idx = try m.quantize(latent: try m.encode(images: x, threads: compute.threads), threads: compute.threads)
            let y = try m.decode(indices: idx, threads: compute.threads)
            let seconds = Date().timeIntervalSince(start)
            let recon = ImageConversion.images(from: y)
            // Compare against the input as the model saw it (same channel handling).
            let seen = ImageConversion.images(from: x)
            var total = 0.0
            for (i, (a, b)) in zip(seen, recon).enumerated() {
                let p = ImageConversion.psnr(a, b)
                total += p
                print(String(format: "%@: PSNR %.2f dB", (inputs[i] as NSString).lastPathComponent, p))
            }
            if recon.count > 1 { print(String(format: "mean PSNR %.2f dB over %d images", total / Double(recon.count), recon.count)) }
            compute.progress.finish(String(format: "encode+quantize+decode of %@ in %.3f s (%@)", plural(recon.count, "image"), seconds, plural(compute.threads, "thread")))
            let image = recon.count == 1 ? recon[0] : ImageConversion.grid([seen, recon])
            try writeFileAtomically(output, PNG.encode(image))
            print("wrote \(output)")
        }
    }
}
