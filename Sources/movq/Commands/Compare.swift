import ArgumentParser
import Foundation
import MoVQ

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode the same inputs with two models (e.g. fp32 and int8/fp16 of one checkpoint); print PSNR, max abs error and SSIM.",
        discussion: """
        Inputs: PNG images (encoded and quantized by the reference model, then both decode the same indices), \
        or a latent .npy, or (default) a seeded random latent of --size. PSNR and SSIM compare the float outputs \
        as (x + 1) / 2, unrounded.
        """)

    @Argument(help: "Reference .mvq (e.g. fp32).")
    var reference: String
    @Argument(help: "Model to compare (e.g. the int8 or fp16 conversion of the same checkpoint).")
    var test: String
    @Argument(help: "PNG images to encode with the reference model.")
    var images: [String] = []
    @Option(help: "Float32 latent [B, C, h, w] to decode with both.")
    var latent: String?
    @Option(help: "Output size of the random latent (no images or --latent).")
    var size: Int = 256
    @Option(help: "Images in the random latent.")
    var batch: Int = 1
    @Option(help: "Seed of the random latent.")
    var seed: UInt64 = 0
    @Flag(help: "Print one JSON object.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            let ref = try compute.openModel(reference)
            let other = try compute.openModel(test)
            guard ref.config == other.config else {
                throw MoVQError.invalidInput("\(test) has a different architecture than \(reference)")
            }
            let t = compute.threads
            let a: Tensor, b: Tensor, input: String
            if !images.isEmpty {
                let x = try ImageConversion.tensor(from: try readImages(images, for: ref, threads: t), channels: ref.config.inChannels)
                let idx = try ref.quantize(latent: try ref.encode(images: x, threads: t), threads: t)
                a = try ref.decode(indices: idx, threads: t); b = try other.decode(indices: idx, threads: t)
                input = "\(images.count) image(s), encoded and quantized by the reference"
            } else {
                let z: Tensor
                if let latent {
                    z = try loadLatent(latent)
                    input = latent
                } else {
                    z = try randomLatent(ref, size: size, batch: batch, seed: seed)
                    input = "random latent \(z.shape), seed \(seed)"
                }
                a = try ref.decode(latent: z, threads: t); b = try other.decode(latent: z, threads: t)
            }
            let stats = try (0..<a.shape[0]).map { try ImageComparison.compare(b, a, image: $0) }
            let meanPSNR = stats.map(\.psnr).reduce(0, +) / Double(stats.count)
            let maxAbs = stats.map(\.maxAbsError).max() ?? 0
            let meanSSIM = stats.map(\.ssim).reduce(0, +) / Double(stats.count)
            if json {
                let obj: [String: Any] = ["reference": reference, "test": test, "input": input, "images": stats.count,
                                          "psnr_db": meanPSNR.isFinite ? meanPSNR : 999, "max_abs_error": maxAbs, "ssim": meanSSIM,
                                          "reference_bytes": ref.file.fileSize, "test_bytes": other.file.fileSize]
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print("input: \(input)")
            for (i, s) in stats.enumerated() where stats.count > 1 {
                print(String(format: "  image %d: PSNR %.2f dB, max abs error %.3g, SSIM %.6f", i, s.psnr, s.maxAbsError, s.ssim))
            }
            print(String(format: "PSNR %.2f dB, max abs error %.3g, SSIM %.6f (%@ vs %@)", meanPSNR, maxAbs, meanSSIM,
                         (test as NSString).lastPathComponent, (reference as NSString).lastPathComponent))
            print(String(format: "file size: %.1f%% of the reference (%d vs %d bytes)",
                         100 * Double(other.file.fileSize) / Double(ref.file.fileSize), other.file.fileSize, ref.file.fileSize))
        }
    }
}
