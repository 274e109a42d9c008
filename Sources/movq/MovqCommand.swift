import ArgumentParser
import Foundation
import MoVQ

@main
struct Movq: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "movq",
        abstract: "MoVQ image generation on CPUs: sample, convert checkpoints, decode, encode, reconstruct, compare, bench.",
        version: MoVQVersion.string,
        subcommands: [Sample.self, Convert.self, Inspect.self, Decode.self, Encode.self, Reconstruct.self, Compare.self, Bench.self]
    )
}

/// Options shared by compute commands.
struct ComputeOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads (default: all cores). Output does not depend on it.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: "Decoder kernels: auto (best tier for this CPU), avx512vnni, avx512, avx2, portable, or reference.")
    var kernels: String = "auto"

    @Option(name: .long, help: "Refuse work whose estimated memory exceeds this (e.g. 4G, 512M; default: 80% of physical or container memory).")
    var maxMemory: String?

    func validate() throws {
        guard threads >= 1 && threads <= 1024 else { throw ValidationError("--threads must be between 1 and 1024") }
        if let m = maxMemory, MemoryLimit.parse(m) == nil { throw ValidationError("--max-memory must be a size like 4G, 512M or a byte count") }
    }

    /// Bytes a decode, encode or sample may use (`--max-memory`).
    var memoryLimit: Int { maxMemory.flatMap(MemoryLimit.parse) ?? MemoryLimit.defaultBytes }

    /// Opens a packed autoencoder with `--kernels` and `--max-memory`.
    func openModel(_ path: String) throws -> MoVQModel {
        try MoVQModel(contentsOf: path, backend: try backend(), memoryLimit: memoryLimit)
    }

    /// The SIMD tier for a prior (which has no reference backend).
    func priorKernels() throws -> KernelSet {
        guard case .simd(let k) = try backend() else {
            throw MoVQError.unsupported("the prior runs on SIMD kernels only (--kernels auto|avx512vnni|avx512|avx2|portable)")
        }
        return k
    }

    /// The backend `--kernels` names; a tier this CPU lacks is an error.
    func backend() throws -> Backend {
        switch kernels {
        case "auto": return .fast
        case "reference": return .reference
        default:
            guard let k = Platform.kernels(named: kernels) else {
                throw MoVQError.invalidInput("kernels '\(kernels)' unavailable here (this CPU has: \(Platform.availableTiers.joined(separator: ", ")), reference)")
            }
            return .simd(k)
        }
    }
}

/// Runs `body`, turning library errors into one line on stderr and exit 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as MoVQError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    }
}

/// The embedded demo model and images that ship inside the CLI.
enum DemoAssets {
    static var model: String? { Bundle.module.path(forResource: "demo", ofType: "mvq") }
    static var prior: String? { Bundle.module.path(forResource: "demo-prior", ofType: "mvq") }
    static var images: [String] {
        let dir = Bundle.module.resourceURL?.appendingPathComponent("demo_images")
        guard let d = dir, let names = try? FileManager.default.contentsOfDirectory(atPath: d.path) else { return [] }
        return names.filter { $0.hasSuffix(".png") }.sorted().map { d.appendingPathComponent($0).path }
    }

    /// Splits positional paths into an optional model (`*.mvq`) and the rest;
    /// without a model, the embedded demo model is used.
    static func modelAndInputs(_ paths: [String]) throws -> (model: String, inputs: [String]) {
        if let first = paths.first, first.hasSuffix(".mvq") { return (first, Array(paths.dropFirst())) }
        guard let m = model else { throw MoVQError.io(path: "demo.mvq", reason: "embedded demo model not found in the bundle") }
        return (m, paths)
    }
}

/// The files that hold a float tensor: one `.npy`, or PNG images
/// (`OUT-i.png` when B > 1).
func outputFiles(_ t: Tensor, to path: String) throws -> [(path: String, data: Data)] {
    if path.hasSuffix(".npy") { return [(path, NPY.encode(shape: t.shape, float32: t.data))] }
    guard path.hasSuffix(".png") else { throw MoVQError.invalidInput("output \(path) must end in .npy or .png") }
    let images = ImageConversion.images(from: t)
    let paths = images.count == 1 ? [path] : images.indices.map { String(path.dropLast(4)) + "-\($0).png" }
    return zip(paths, images).map { ($0, PNG.encode($1)) }
}

/// Writes an output set all-or-nothing and says what was written.
func writeOutputs(_ files: [(path: String, data: Data)]) throws {
    try writeFilesAtomically(files)
    print("wrote \(files.map(\.path).joined(separator: ", "))")
}

/// Reads PNG inputs for `m`'s encoder. Sizes come from the headers first, so
/// an image too large to encode within the memory limit is refused before
/// its pixels are decoded.
func readImages(_ paths: [String], for m: MoVQModel) throws -> [Image8] {
    let headers = try paths.map { try PNG.header(path: $0) }
    guard let h = headers.first else { throw MoVQError.invalidInput("no input images") }
    if let i = headers.firstIndex(where: { $0.width != h.width || $0.height != h.height }) {
        throw MoVQError.invalidInput("all images must have the same size: \(paths[0]) is \(h.width)x\(h.height), \(paths[i]) is \(headers[i].width)x\(headers[i].height)")
    }
    try m.checkEncodeMemory(batch: headers.count, height: h.height, width: h.width)
    return try paths.map { try PNG.read(path: $0) }
}
