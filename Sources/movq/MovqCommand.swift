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
    @Option(name: .customLong("threads"), help: "Worker threads (default: all cores). Output does not depend on it.")
    var threadsOption: Int?

    @Flag(name: .shortAndLong, help: "Print no progress.")
    var quiet = false

    /// `--threads`, or one per core.
    var threads: Int { threadsOption ?? ProcessInfo.processInfo.activeProcessorCount }

    /// Progress lines on stderr (none with `--quiet`).
    var progress: ProgressLine { ProgressLine(quiet: quiet) }

    @Option(name: .long, help: "Decoder kernels: auto (best tier for this CPU), avx512vnni, avx512, avx2, portable, or reference.")
    var kernels: String = "auto"

    @Option(name: .long, help: "Memory limit (e.g. 4G, 512M; default: 80% of physical or container memory). A decode or encode whose whole maps exceed it runs in row bands, bit-identical; work that fits no schedule is refused.")
    var maxMemory: String?

    func validate() throws {
        if let t = threadsOption, !(1...1024).contains(t) { throw ValidationError("--threads must be between 1 and 1024") }
        if let m = maxMemory, MemoryLimit.parse(m) == nil { throw ValidationError("--max-memory must be a size like 4G, 512M or a byte count") }
    }

    /// Bytes a decode, encode or sample may use (`--max-memory`).
    var memoryLimit: Int { maxMemory.flatMap(MemoryLimit.parse) ?? MemoryLimit.defaultBytes }

    /// Opens a packed autoencoder with `--kernels` and `--max-memory`.
    func openModel(_ path: String) throws -> MoVQModel {
        try MoVQModel(contentsOf: path, backend: try backend(), memoryLimit: memoryLimit)
    }

    /// The SIMD tier for a prior (which has no reference backend).
    func priorTier() throws -> KernelTier {
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
            guard let t = KernelTier.named(kernels) else {
                throw MoVQError.invalidInput("kernels '\(kernels)' unavailable here (this CPU has: \(KernelTier.available.map(\.name).joined(separator: ", ")), reference)")
            }
            return .simd(t)
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

/// Progress on stderr: one line rewritten in place on a terminal, plain
/// lines otherwise (logs stay readable), nothing when quiet.
final class ProgressLine: @unchecked Sendable {
    let quiet: Bool, terminal: Bool
    private var open = false
    private let lock = NSLock()

    init(quiet: Bool) { self.quiet = quiet; terminal = isatty(STDERR_FILENO) != 0 }

    /// Shows `text` as the current state.
    func update(_ text: String) {
        guard !quiet else { return }
        lock.lock(); defer { lock.unlock() }
        if terminal { write("\r\(text)\u{1B}[K"); open = true } else { write(text + "\n") }
    }

    /// Ends the current line (on a terminal) and prints `text` if given.
    func finish(_ text: String? = nil) {
        guard !quiet else { return }
        lock.lock(); defer { lock.unlock() }
        if open { write("\n"); open = false }
        if let text { write(text + "\n") }
    }

    /// A decoder/encoder progress handler that shows image and level.
    func handler(_ start: Date = Date()) -> ProgressHandler {
        { [self] e in
            let images = e.images > 1 ? String(format: " image %d/%d,", e.image + 1, e.images) : ""
            let pass = e.passes > 0 ? String(format: ", banded pass %d/%d", e.pass, e.passes) : ""
            update(String(format: "%@:%@ stage %d/%d%@ (%3.0f%%)  %.1f s", e.task, images, e.stage, e.stages, pass, 100 * e.fraction,
                          Date().timeIntervalSince(start)))
        }
    }

    private func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}

/// The files that hold a float tensor: one `.npy`, or PNG images
/// (`OUT-i.png` when B > 1).
func outputFiles(_ t: Tensor, to path: String) throws -> [(path: String, data: Data)] {
    if path.hasSuffix(".npy") { return [(path, NPY.encode(shape: t.shape, float32: t.data))] }
    guard path.hasSuffix(".png") else { throw MoVQError.invalidInput("output \(path) must end in .npy or .png") }
    return pngFiles(ImageConversion.images(from: t), to: path)
}

/// `OUT.png` for one image, `OUT-0.png`, `OUT-1.png`, ... for several.
func pngFiles(_ images: [Image8], to path: String) -> [(path: String, data: Data)] {
    let paths = images.count == 1 ? [path] : images.indices.map { String(path.dropLast(4)) + "-\($0).png" }
    return zip(paths, images).map { ($0, PNG.encode($1)) }
}

/// "1 image", "2 images".
func plural(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

/// Writes an output set all-or-nothing and says what was written.
func writeOutputs(_ files: [(path: String, data: Data)]) throws {
    try writeFilesAtomically(files)
    print("wrote \(files.map(\.path).joined(separator: ", "))")
}

/// How an input image is brought to a size the encoder takes.
struct ImageFitOptions: ParsableArguments {
    @Flag(help: "Center-crop each image down to a multiple of the model's downsampling factor.")
    var crop = false
    @Option(help: "Resize each image to WxH pixels first (bilinear, antialiased), e.g. 256x256.")
    var resize: String?

    func validate() throws {
        if let r = resize, Self.size(r) == nil { throw ValidationError("--resize must be WxH, e.g. 256x256") }
    }

    static func size(_ text: String) -> (width: Int, height: Int)? {
        let p = text.lowercased().split(separator: "x")
        guard p.count == 2, let w = Int(p[0]), let h = Int(p[1]), (1...65536).contains(w), (1...65536).contains(h) else { return nil }
        return (w, h)
    }

    /// The size an image of `width x height` is encoded at.
    func target(width: Int, height: Int, factor f: Int) -> (width: Int, height: Int) {
        var (w, h) = resize.flatMap(Self.size) ?? (width, height)
        if crop { w = max(f, w / f * f); h = max(f, h / f * f) }
        return (w, h)
    }

    func apply(_ img: Image8, factor f: Int) -> Image8 {
        var img = img
        if let (w, h) = resize.flatMap(Self.size), w != img.width || h != img.height { img = ImageConversion.resized(img, width: w, height: h) }
        let (w, h) = target(width: img.width, height: img.height, factor: f)
        if crop && (w != img.width || h != img.height) { img = ImageConversion.centerCropped(img, width: w, height: h) }
        return img
    }
}

/// Reads PNG inputs for `m`'s encoder, resized or cropped per `fit`. Sizes
/// come from the headers first, so an image too large to encode within the
/// memory limit is refused before its pixels are decoded.
func readImages(_ paths: [String], for m: MoVQModel, fit: ImageFitOptions? = nil, threads: Int = 1) throws -> [Image8] {
    let f = m.config.downsampleFactor
    let headers = try paths.map { try PNG.header(path: $0) }
    guard let first = headers.first else { throw MoVQError.invalidInput("no input images") }
    let sizes = headers.map { fit?.target(width: $0.width, height: $0.height, factor: f) ?? ($0.width, $0.height) }
    if let i = sizes.firstIndex(where: { $0 != sizes[0] }) {
        throw MoVQError.invalidInput("all images must have the same size: \(paths[0]) is \(first.width)x\(first.height), \(paths[i]) is \(headers[i].width)x\(headers[i].height) (use --resize WxH)")
    }
    let (w, h) = sizes[0]
    if w % f != 0 || h % f != 0 {
        throw MoVQError.invalidInput("\(paths[0]) is \(w)x\(h); the model needs width and height that are multiples of \(f): use --crop or --resize WxH")
    }
    try m.checkEncodeMemory(batch: paths.count, height: h, width: w, threads: threads)
    return try paths.map { p in
        let img = try PNG.read(path: p)
        return fit?.apply(img, factor: f) ?? img
    }
}
