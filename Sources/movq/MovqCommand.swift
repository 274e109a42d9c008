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

    @Option(name: .long, help: "Decoder kernels: auto (best tier for this CPU), avx512, avx2, portable, or reference.")
    var kernels: String = "auto"

    func validate() throws {
        guard threads >= 1 && threads <= 1024 else { throw ValidationError("--threads must be between 1 and 1024") }
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

/// Writes a float tensor as `.npy`, or images as PNG (`OUT-i.png` when B > 1).
func writeOutput(_ t: Tensor, to path: String) throws {
    if path.hasSuffix(".npy") {
        try writeFileAtomically(path, NPY.encode(shape: t.shape, float32: t.data))
        print("wrote \(path) \(t.shape)")
    } else if path.hasSuffix(".png") {
        let images = ImageConversion.images(from: t)
        let paths = images.count == 1 ? [path] : images.indices.map { String(path.dropLast(4)) + "-\($0).png" }
        let encoded = images.map { PNG.encode($0) }
        for (p, data) in zip(paths, encoded) { try writeFileAtomically(p, data) }
        print("wrote \(paths.joined(separator: ", "))")
    } else {
        throw MoVQError.invalidInput("output \(path) must end in .npy or .png")
    }
}
