import ArgumentParser
import Foundation
import MoVQ
import MoVQDemo

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a float latent [B, C, h, w] or an index map [B, h, w] / [B, c, h, w] to images.")

    @Argument(help: "Packed .mvq model (default: the embedded demo model).")
    var model: String?
    @Option(help: "Float32 latent .npy, NCHW.")
    var latent: String?
    @Option(help: "Integer index map .npy, [B, h, w] or [B, c, h, w].")
    var indices: String?
    @Flag(help: "Snap the float latent to its nearest codes before decoding.")
    var quantize = false
    @Option(name: .shortAndLong, help: "OUT.npy (raw float output) or OUT.png (images; OUT-i.png when B > 1).")
    var output: String
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard (latent == nil) != (indices == nil) else { throw ValidationError("give exactly one of --latent or --indices") }
        if quantize && latent == nil { throw ValidationError("--quantize applies to --latent") }
    }

    func run() throws {
        try reportingErrors {
            let (path, _) = try DemoAssets.modelAndInputs(model.map { [$0] } ?? [])
            guard output.hasSuffix(".npy") || output.hasSuffix(".png") else {
                throw MoVQError.invalidInput("output \(output) must end in .npy or .png")
            }
            let m = try compute.openModel(path)
            let start = Date()
            let line = compute.progress
            let out: Tensor
            if let latent {
                out = try m.decode(latent: try loadLatent(latent), quantize: quantize, threads: compute.threads, progress: line.handler(start))
            } else {
                out = try m.decode(indices: try loadIndexMap(indices!, model: m), threads: compute.threads, progress: line.handler(start))
            }
            line.finish(String(format: "decoded %@ in %.3f s", "\(out.shape)", Date().timeIntervalSince(start)))
            try writeOutputs(try outputFiles(out, to: output))
        }
    }
}

/// Reads an integer index map, adding the channel axis for `[B, h, w]` files.
func loadIndexMap(_ path: String, model: MoVQModel) throws -> IndexMap {
    let indices = try NPY.read(path: path).indexMap(name: path)
    let s = indices.shape
    try model.checkDecodeMemory(batch: s[0], latentHeight: s[2], latentWidth: s[3])
    return indices
}

/// A reproducible random latent (uniform in [-2, 2]) for `size` x `size`
/// outputs: what `bench` times and `compare` decodes without inputs.
/// The size is checked against the model's memory limit before anything is allocated.
func randomLatent(_ m: MoVQModel, size: Int, batch: Int, seed: UInt64) throws -> Tensor {
    let c = m.config, f = c.downsampleFactor
    guard size >= f, size % f == 0, batch >= 1, batch <= 4096 else {
        throw MoVQError.invalidInput("--size must be a positive multiple of \(f), --batch 1...4096")
    }
    let h = size / f
    try m.checkDecodeMemory(batch: batch, latentHeight: h, latentWidth: h)
    var rng = SeededGenerator(seed: seed)
    return try Tensor(shape: [batch, c.vqEmbedDim, h, h], data: (0..<(batch * c.vqEmbedDim * h * h)).map { _ in Float.random(in: -2...2, using: &rng) })
}

/// Reads a float latent `.npy` (f32, f64 or f16) as a tensor.
func loadLatent(_ path: String) throws -> Tensor {
    try NPY.read(path: path).floatTensor(name: path)
}
