import Foundation
import MoVQKernelCore

/// A loaded MoVQ autoencoder: decode latents or index maps to images, and
/// encode images to latents or indices.
///
/// Images are float tensors `[B, C, H, W]` in [-1, 1]; latents are the
/// quantizer's space `[B, vqEmbedDim, H / f, W / f]`; index maps are
/// `[B, c, H / f, W / f]`. All methods are thread-safe and deterministic:
/// results are bit-identical for any `threads` (worker threads; by default
/// one per core, as on the command line).
public final class MoVQModel: @unchecked Sendable {
    /// The architecture.
    public let config: MoVQConfig
    /// The packed file the weights live in (memory-mapped).
    public let file: PackedFile
    /// When set, the fast decoder records time per operator here.
    public var profiler: Profiler?
    /// Which implementation runs the decoder.
    public let backend: Backend
    let decoder: Decoder
    let fastDecoder: FastDecoder?
    let fastEncoder: FastEncoder?
    let encoder: Encoder?
    let quantizer: Quantizer?
    /// Bytes a decode or encode may plan to use (see `MemoryLimit`).
    public let memoryLimit: Int
    private let workspace = Workspace()
    private let workspaceLock = NSLock()

    /// Opens a packed `.mvq` model. Throws `MoVQError` on a missing,
    /// truncated or corrupt file, or tensors that do not fit the config.
    /// `backend` defaults to the SIMD kernels of the best tier this CPU has.
    /// `memoryLimit` bounds each decode and encode (bytes, estimated from the
    /// shapes before starting; `MoVQError.memoryLimit` above it).
    public init(contentsOf path: String, verifyChecksums: Bool = true, backend: Backend = .fast,
                memoryLimit: Int = MemoryLimit.defaultBytes) throws {
        self.memoryLimit = memoryLimit
        file = try PackedFile(path: path, verifyChecksums: verifyChecksums)
        guard let c = file.header.config else {
            throw MoVQError.invalidInput("\(path) is a \(file.header.kind), not a VQ autoencoder")
        }
        config = c
        self.backend = backend
        let lookup: WeightLookup = { [file] name, shape in try file.floats(name, shape: shape) }
        decoder = try Decoder(config: config, lookup)
        if case .simd = backend { fastDecoder = FastDecoder(decoder) } else { fastDecoder = nil }
        // fp32 weights now live packed; drop the mapped copy from memory.
        if fastDecoder != nil { file.map.releaseResidentPages() }
        encoder = config.hasEncoder ? try Encoder(config: config, lookup) : nil
        if case .simd = backend, let e = encoder { fastEncoder = FastEncoder(e) } else { fastEncoder = nil }
        quantizer = config.hasQuantizer ? try Quantizer(config: config, lookup) : nil
    }

    /// Runs the decoder on z_q with the chosen backend.
    func runDecoder(_ zq: Tensor, threads: Int, progress: ProgressHandler?) -> Tensor {
        let b = zq.shape[0], per = zq.count / max(1, b)
        guard case .simd(let kernels) = backend, let fast = fastDecoder else {
            let y = decoder(zq, ExecutionContext(threads: threads))
            progress?(ProgressEvent(task: "decode", image: b - 1, images: b, stage: 1, stages: 1))
            return y
        }
        var rt = FastRuntime(kernels: kernels, parallelism: Parallelism(threads: threads), profiler: profiler, workspace: workspace)
        workspaceLock.lock(); defer { workspaceLock.unlock() }
        var out: [Float] = []
        var shape: [Int] = []
        for i in 0..<b {
            if let progress { rt.stageDone = { progress(ProgressEvent(task: "decode", image: i, images: b, stage: $0, stages: $1)) } }
            let one = try! Tensor(shape: [1] + zq.shape.dropFirst(), data: Array(zq.data[(i * per)..<((i + 1) * per)]))
            workspace.begin(shape: one.shape + [threads])  // scratch sizes depend on the thread count
            let y = fast(one, rt, workspace)
            workspace.end()
            out += y.data
            shape = [b] + y.shape.dropFirst()
        }
        return try! Tensor(shape: shape, data: out)
    }

    /// The narrowest weight type in the file (int8 before fp16 before fp32).
    public var weightPrecision: Precision {
        let types = Set(file.header.tensors.map(\.dtype))
        return types.contains(.i8) ? .int8 : types.contains(.f16) ? .fp16 : .fp32
    }

    /// How the decoder computes: fp16 weights are widened to fp32 once at
    /// load; with int8 weights the fast path runs its 3x3 convolutions as
    /// int16 Winograd GEMMs (`WinogradInt16`) and the rest in fp32.
    public var computeMode: String {
        guard case .simd = backend, weightPrecision == .int8, FastConv.int16Enabled else { return "fp32" }
        return "int16 winograd + fp32"
    }

    /// Bytes of the fast path's planned activation arena.
    public var workspaceBytes: Int { workspaceLock.lock(); defer { workspaceLock.unlock() }; return workspace.bytes }

    /// Decodes latents `[B, vqEmbedDim, h, w]` to images `[B, outChannels, h*f, w*f]`.
    /// With `quantize`, each latent is first snapped to its nearest codes;
    /// without it the latent is used as z_q directly (as Kandinsky pipelines do).
    /// `progress` is called after each resolution level of each image.
    public func decode(latent: Tensor, quantize: Bool = false, threads: Int = Parallelism.allCores.threads, progress: ProgressHandler? = nil) throws -> Tensor {
        try checkLatent(latent, threads: threads)
        if quantize {
            return try decode(indices: try self.quantize(latent: latent, threads: threads), threads: threads, progress: progress)
        }
        return runDecoder(latent, threads: threads, progress: progress)
    }

    /// Decodes an index map `[B, c, h, w]` through batched codebook lookup.
    public func decode(indices: IndexMap, threads: Int = Parallelism.allCores.threads, progress: ProgressHandler? = nil) throws -> Tensor {
        let s = indices.shape
        try checkDecodeMemory(batch: s[0], latentHeight: s[2], latentWidth: s[3], threads: threads)
        return runDecoder(try requireQuantizer().lookup(indices), threads: threads, progress: progress)
    }

    /// Encodes images `[B, inChannels, H, W]` in [-1, 1] to latents (before quantization).
    /// `progress` is called after each resolution level of each image.
    public func encode(images: Tensor, threads: Int = Parallelism.allCores.threads, progress: ProgressHandler? = nil) throws -> Tensor {
        guard let encoder else { throw MoVQError.unsupported("this model file has no encoder") }
        guard images.shape.count == 4, images.shape[1] == config.inChannels, images.shape[0] >= 1 else {
            throw MoVQError.invalidInput("images must be [B, \(config.inChannels), H, W], got \(images.shape)")
        }
        try checkEncodeMemory(batch: images.shape[0], height: images.shape[2], width: images.shape[3], threads: threads)
        guard case .simd(let kernels) = backend, let fast = fastEncoder else {
            return encoder(images, ExecutionContext(threads: threads))
        }
        var rt = FastRuntime(kernels: kernels, parallelism: Parallelism(threads: threads), profiler: profiler, workspace: workspace)
        workspaceLock.lock(); defer { workspaceLock.unlock() }
        var out: [Float] = []
        var shape: [Int] = []
        let b = images.shape[0]
        for i in 0..<b {
            if let progress { rt.stageDone = { progress(ProgressEvent(task: "encode", image: i, images: b, stage: $0, stages: $1)) } }
            workspace.begin(shape: [-1] + images.shape.dropFirst() + [threads])  // encoder plans are keyed apart from decoder plans
            let z = fast(images, image: i, rt, workspace)
            workspace.end()
            out += z.data
            shape = [images.shape[0]] + z.shape.dropFirst()
        }
        return try! Tensor(shape: shape, data: out)
    }

    /// Nearest codebook indices of a latent.
    public func quantize(latent: Tensor, threads: Int = Parallelism.allCores.threads) throws -> IndexMap {
        try checkLatent(latent)
        return try requireQuantizer().nearest(latent, ExecutionContext(threads: threads))
    }

    /// Codebook lookup: index map -> z_q.
    public func lookup(indices: IndexMap) throws -> Tensor {
        try requireQuantizer().lookup(indices)
    }

    func requireQuantizer() throws -> Quantizer {
        guard let quantizer else { throw MoVQError.unsupported("this model file has no quantizer (codebook)") }
        return quantizer
    }

    func checkLatent(_ z: Tensor, threads: Int = Parallelism.allCores.threads) throws {
        guard z.shape.count == 4, z.shape[1] == config.vqEmbedDim else {
            throw MoVQError.invalidInput("latent must be [B, \(config.vqEmbedDim), h, w], got \(z.shape)")
        }
        try checkDecodeMemory(batch: z.shape[0], latentHeight: z.shape[2], latentWidth: z.shape[3], threads: threads)
        if let bad = z.data.firstIndex(where: { !$0.isFinite }) {
            throw MoVQError.invalidInput("latent holds NaN or infinity at flat index \(bad)")
        }
    }

    /// One resolution level of a walk through the decoder or encoder, for
    /// the memory estimates: channels in and out, size, attention, and the
    /// channels of the 2x resampled map that follows it (nil: none).
    struct LevelShape { var cin: Int, cout: Int, height: Double, width: Double, attention: Bool, resampled: Int? }

    /// Bytes of one padded planar map (`PlanarMap`: plane stride rounded up
    /// to 16 floats after 128 floats of slack).
    static func mapBytes(channels: Int, height: Double, width: Double) -> Double {
        Double(channels) * ((height + 2) * (width + 2) + 144) * 4
    }

    /// The largest set of buffers alive at once along `levels`, plus the
    /// per-worker Winograd scratch of the widest convolution (live while
    /// those maps are). `up` says whether resampling doubles (decoder) or
    /// halves (encoder) the size.
    static func activationPeak(_ levels: [LevelShape], up: Bool, threads: Int) -> Double {
        var peak = 0.0, widest = 0, maxWidth = 0.0
        for l in levels {
            let (h, w, cin, cout) = (l.height, l.width, l.cin, l.cout)
            widest = max(widest, cin, cout); maxWidth = max(maxWidth, w)
            // A resnet: x, norm1(x), conv1 -> h1, shortcut, conv2 -> out (`FastResnet`),
            // plus the two SCN modulation maps its norms compute.
            let resnet = max(2 * cin + cout, cin + 3 * cout) + 2 * max(cin, cout)
            peak = max(peak, mapBytes(channels: resnet, height: h, width: w))
            if l.attention {  // x, y, normed maps; 5 plain planes and 2 packed copies; a query block of scores
                let n = h * w
                peak = max(peak, mapBytes(channels: 3 * cout, height: h, width: w) + (7 * Double(cout) * (n + 192) + n * 448) * 4)
            }
            if let r = l.resampled {
                let map = mapBytes(channels: cout, height: h, width: w)
                if up {  // the map and its 2x upsampled conv output
                    peak = max(peak, map + mapBytes(channels: r, height: 2 * h, width: 2 * w))
                } else {  // the map, its four stride-2 phase planes, the output
                    peak = max(peak, map + mapBytes(channels: 4 * cout + r, height: h / 2, width: w / 2))
                }
            }
        }
        // `WinogradScratch.floats` for blocks of at most 4 GEMM chunks of 64 tiles.
        let t = 256.0, c = Double(widest)
        let scratch = Double(threads) * (32 * c * t + 4 * (2 * t + 18) + maxWidth + 2 + 4 * t + (c / 2 + 2) * t) * 4
        return peak + scratch
    }

    /// Weight memory: the mapped file (resident while weights are packed),
    /// the packed fp32 copies, and for fp16 and int8 files the widened fp32
    /// weights they are packed from.
    var weightBytes: Double {
        let elements = file.header.tensors.reduce(0.0) { $0 + Double($1.elementCount) }
        return Double(file.fileSize) + elements * 4 * (weightPrecision == .fp32 ? 1 : 2)
    }

    /// Estimated peak memory, in bytes, of decoding `batch` latents of
    /// `latentHeight x latentWidth` on `threads` threads: resident weights,
    /// the activations of one image (images decode one after another) and
    /// the outputs. An upper bound of the planned arena (tested), computed
    /// before anything is allocated.
    public func estimatedDecodeBytes(batch: Int, latentHeight h: Int, latentWidth w: Int, threads: Int = Parallelism.allCores.threads) -> Double {
        let c = config, f = Double(c.downsampleFactor), n = c.blockOutChannels.count
        let reversed = Array(c.blockOutChannels.reversed())
        let levels = (0..<n).map { l in
            LevelShape(cin: l == 0 ? reversed[0] : reversed[l - 1], cout: reversed[l], height: Double(h) * Double(1 << l), width: Double(w) * Double(1 << l),
                       attention: c.decoderAttention[l] || (l == 0 && c.midBlockAttention), resampled: l + 1 < n ? reversed[l] : nil)
        }
        let pixels = Double(batch) * Double(h) * Double(w) * f * f
        let outputs = pixels * Double(c.outChannels) * (4 * 3 + 1)  // the tensor, its batch copy, the images
        let inputs = Double(batch) * Double(h) * Double(w) * Double(c.vqEmbedDim) * 4 * 3
        return weightBytes + Self.activationPeak(levels, up: true, threads: threads) + outputs + inputs + 64e6  // + slack
    }

    /// Estimated peak memory, in bytes, of encoding `batch` images of
    /// `height x width` (as `estimatedDecodeBytes`).
    public func estimatedEncodeBytes(batch: Int, height: Int, width: Int, threads: Int = Parallelism.allCores.threads) -> Double {
        let c = config, n = c.blockOutChannels.count
        let levels = (0..<n).map { l in
            LevelShape(cin: l == 0 ? c.blockOutChannels[0] : c.blockOutChannels[l - 1], cout: c.blockOutChannels[l],
                       height: Double(height) / Double(1 << l), width: Double(width) / Double(1 << l),
                       attention: c.encoderAttention[l] || (l == n - 1 && c.midBlockAttention), resampled: l + 1 < n ? c.blockOutChannels[l] : nil)
        }
        let pixels = Double(batch) * Double(height) * Double(width)
        let inputs = pixels * Double(c.inChannels) * (4 * 2 + 4)  // the tensor, its planar copy, the decoded PNGs
        return weightBytes + Self.activationPeak(levels, up: false, threads: threads) + inputs + 64e6
    }

    /// Throws unless `batch` latents of `latentHeight x latentWidth` are
    /// non-empty and their decode fits `memoryLimit`.
    public func checkDecodeMemory(batch: Int, latentHeight: Int, latentWidth: Int, threads: Int = Parallelism.allCores.threads) throws {
        guard batch >= 1, latentHeight >= 1, latentWidth >= 1 else {
            throw MoVQError.invalidInput("empty latent shape [\(batch), *, \(latentHeight), \(latentWidth)]")
        }
        try MemoryLimit.check("decoding \(batch) latent(s) of \(latentHeight)x\(latentWidth) (images \(config.downsampleFactor)x larger)",
                              estimate: estimatedDecodeBytes(batch: batch, latentHeight: latentHeight, latentWidth: latentWidth, threads: threads), limit: memoryLimit)
    }

    /// Throws unless `batch` images of `height x width` have a valid size
    /// and their encode fits `memoryLimit`.
    public func checkEncodeMemory(batch: Int, height: Int, width: Int, threads: Int = Parallelism.allCores.threads) throws {
        let f = config.downsampleFactor
        guard batch >= 1, height >= f, width >= f, height % f == 0, width % f == 0 else {
            throw MoVQError.invalidInput("image size \(width)x\(height) (width x height) must be a positive multiple of \(f) in both directions")
        }
        try MemoryLimit.check("encoding \(batch) image(s) of \(width)x\(height)",
                              estimate: estimatedEncodeBytes(batch: batch, height: height, width: width, threads: threads), limit: memoryLimit)
    }
}

/// The implementation that runs the decoder.
public enum Backend: Sendable {
    /// The simple reference kernels (NCHW, scalar loops).
    case reference
    /// The SIMD kernels of one ISA tier (see `Platform`).
    case simd(KernelSet)

    /// SIMD kernels of the best tier this CPU supports (or `MOVQ_ISA`).
    public static var fast: Backend { .simd(Platform.kernels) }

    /// A short name: "reference", or the tier's name.
    public var name: String {
        switch self {
        case .reference: return "reference"
        case .simd(let k): return k.name
        }
    }
}
