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
    /// When set, the SIMD executor records time per operator here.
    public var profiler: Profiler?
    /// Which implementation runs the decoder and encoder.
    public let backend: Backend
    /// Bytes a decode or encode may plan to use (see `MemoryLimit`). A
    /// decode or encode whose full-map execution would exceed it runs in
    /// row bands instead (`BandedSchedule`), bit-identical to the full one.
    public let memoryLimit: Int
    /// Forces a banded schedule (tests: tiny bands on small models).
    package var bandOverride: BandChoice? {
        get { cacheLock.lock(); defer { cacheLock.unlock() }; return override }
        set { cacheLock.lock(); override = newValue; schedules = [:]; cacheLock.unlock() }
    }
    private var override: BandChoice? = nil
    /// Planned schedules by (encoder?, height, width, threads).
    private var schedules: [[Int]: BandedSchedule?] = [:]
    private let cacheLock = NSLock()
    /// The decoder's plan for a latent of (height, width), and the encoder's for an image.
    let decoderPlan: @Sendable (Int, Int) -> ModelPlan
    let encoderPlan: @Sendable (Int, Int) -> ModelPlan
    let decoder: SIMDExecutor?
    let encoder: SIMDExecutor?
    let quantizer: Quantizer?

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
        // Every tensor the plans use must be in the file with its shape (the SIMD path finds out while packing).
        for spec in tensorSpecs(for: c) {
            guard let e = file.entry(spec.name) else { throw MoVQError.missingTensor(spec.name) }
            guard e.shape == spec.shape else { throw MoVQError.shapeMismatch(tensor: spec.name, expected: spec.shape, found: e.shape) }
        }
        let decoderPlan: @Sendable (Int, Int) -> ModelPlan = { AutoencoderPlans.decoder(c, latentHeight: $0, latentWidth: $1) }
        let encoderPlan: @Sendable (Int, Int) -> ModelPlan = { AutoencoderPlans.encoder(c, height: $0, width: $1) }
        self.decoderPlan = decoderPlan; self.encoderPlan = encoderPlan
        if case .simd(let tier) = backend {
            decoder = try SIMDExecutor(file: file, kernels: tier.kernels, planAt: decoderPlan)
            encoder = c.hasEncoder ? try SIMDExecutor(file: file, kernels: tier.kernels, planAt: encoderPlan) : nil
        } else {
            decoder = nil; encoder = nil
        }
        quantizer = c.hasQuantizer ? try Quantizer(config: c, file: file) : nil
        // The weights now live packed (or, for the reference backend, are read per op): drop the mapped copy from memory.
        file.map.releaseResidentPages()
    }

    /// Runs a plan (decoder or encoder) on every image of `input` with the chosen backend.
    func run(_ executor: SIMDExecutor?, plan: (Int, Int) -> ModelPlan, _ input: Tensor, task: String, threads: Int,
             progress: ProgressHandler?) throws -> Tensor {
        let b = input.shape[0]
        guard let executor else {
            let y = try ReferenceExecutor(file: file).run(plan(input.shape[2], input.shape[3]), input, threads: threads)
            progress?(ProgressEvent(task: task, image: b - 1, images: b, stage: 1, stages: 1))
            return y
        }
        let (h, w) = (input.shape[2], input.shape[3])
        guard let s = schedule(executor, plan: plan, height: h, width: w, threads: threads) else {
            let whole = executor.layout(plan(h, w), threads: threads).bytes
            throw MoVQError.memoryLimit(what: "\(task) of \(w)x\(h) (not even in row bands)", estimate: Double(whole), limit: memoryLimit)
        }
        var out: [Float] = []
        var shape: [Int] = []
        let stages = plan(h, w).stageEnds.count
        for i in 0..<b {
            var stage = (0, stages)
            let y = executor.run(input, image: i, threads: threads, profiler: profiler, schedule: s,
                                 stageDone: progress.map { p in { stage = ($0, $1); p(ProgressEvent(task: task, image: i, images: b, stage: $0, stages: $1)) } },
                                 stepDone: progress.map { p in { p(ProgressEvent(task: task, image: i, images: b, stage: stage.0, stages: stage.1, pass: $0, passes: $1)) } })
            out += y.data
            shape = [b] + y.shape.dropFirst()
        }
        return try Tensor(shape: shape, data: out)
    }

    /// Runs the decoder on z_q.
    func runDecoder(_ zq: Tensor, threads: Int, progress: ProgressHandler?) throws -> Tensor {
        var y = try run(decoder, plan: decoderPlan, zq, task: "decode", threads: threads, progress: progress)
        if config.imagesInUnitRange { for i in y.data.indices { y.data[i] = 2 * y.data[i] - 1 } }  // [0, 1] -> the API's [-1, 1]
        return y
    }

    /// The narrowest weight type in the file (int8 before fp16 before fp32).
    public var weightPrecision: Precision {
        let types = Set(file.header.tensors.map(\.dtype))
        return types.contains(.i8) ? .int8 : types.contains(.f16) ? .fp16 : .fp32
    }

    /// How the decoder computes: fp16 weights are widened to fp32 once at
    /// load; with int8 weights the SIMD path runs its 3x3 convolutions as
    /// integer Winograd GEMMs (`WinogradInt16Args`: "u8s8" byte mode on VNNI,
    /// "8-bit" byte mode as int16 pairs elsewhere, or "int16") and the rest in fp32.
    public var computeMode: String {
        guard let mode = decoder?.integerWinogradMode else { return "fp32" }
        return "\(mode) winograd + fp32"
    }

    /// Bytes of the activation arenas the SIMD executors keep from their last run.
    public var workspaceBytes: Int { (decoder?.arenaBytes ?? 0) + (encoder?.arenaBytes ?? 0) }

    /// Model FLOPs of decoding one latent of `latentHeight x latentWidth`
    /// (multiply-add = 2; convolutions counted as direct ones). With
    /// `executed`, the FLOPs the SIMD operators execute (Winograd and the
    /// upsample convolutions do fewer).
    public func decoderFLOPs(latentHeight h: Int, latentWidth w: Int, executed: Bool = false) -> Double {
        let plan = decoderPlan(h, w)
        guard executed, let decoder else { return plan.flops }
        return decoder.executedFLOPs(plan)
    }

    /// Decodes latents `[B, vqEmbedDim, h, w]` to images `[B, outChannels, h*f, w*f]`.
    /// With `quantize`, each latent is first snapped to its nearest codes;
    /// without it the latent is used as z_q directly (as Kandinsky pipelines do).
    /// `progress` is called after each resolution level of each image.
    public func decode(latent: Tensor, quantize: Bool = false, threads: Int = Parallelism.allCores.threads, progress: ProgressHandler? = nil) throws -> Tensor {
        try checkLatent(latent, threads: threads)
        if quantize {
            return try decode(indices: try self.quantize(latent: latent, threads: threads), threads: threads, progress: progress)
        }
        return try runDecoder(latent, threads: threads, progress: progress)
    }

    /// Decodes an index map `[B, c, h, w]` through batched codebook lookup.
    public func decode(indices: IndexMap, threads: Int = Parallelism.allCores.threads, progress: ProgressHandler? = nil) throws -> Tensor {
        let s = indices.shape
        try checkDecodeMemory(batch: s[0], latentHeight: s[2], latentWidth: s[3], threads: threads)
        return try runDecoder(try requireQuantizer().lookup(indices), threads: threads, progress: progress)
    }

    /// Encodes images `[B, inChannels, H, W]` in [-1, 1] to latents (before quantization).
    /// `progress` is called after each resolution level of each image.
    public func encode(images: Tensor, threads: Int = Parallelism.allCores.threads, progress: ProgressHandler? = nil) throws -> Tensor {
        guard config.hasEncoder else { throw MoVQError.unsupported("this model file has no encoder") }
        guard images.shape.count == 4, images.shape[1] == config.inChannels, images.shape[0] >= 1 else {
            throw MoVQError.invalidInput("images must be [B, \(config.inChannels), H, W], got \(images.shape)")
        }
        try checkEncodeMemory(batch: images.shape[0], height: images.shape[2], width: images.shape[3], threads: threads)
        var x = images
        if config.imagesInUnitRange { for i in x.data.indices { x.data[i] = (x.data[i] + 1) / 2 } }  // the API's [-1, 1] -> [0, 1]
        return try run(encoder, plan: encoderPlan, x, task: "encode", threads: threads, progress: progress)
    }

    /// Nearest codebook indices of a latent.
    public func quantize(latent: Tensor, threads: Int = Parallelism.allCores.threads) throws -> IndexMap {
        try checkLatent(latent)
        return try requireQuantizer().nearest(latent, Parallelism(threads: threads))
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

    /// Resident weight bytes: the operators' weights (packed, or read in
    /// place from the mapped file) and the codebook (SIMD), or the mapped
    /// file the reference executor reads.
    var weightBytes: Double {
        let codebook = Double(config.hasQuantizer ? config.numVQEmbeddings * config.codebookDim * 4 : 0)
        guard let decoder else { return Double(file.fileSize) + codebook }
        return Double(decoder.residentBytes + (encoder?.residentBytes ?? 0)) + codebook
    }

    /// `weightBytes` plus the mapped weights `executor` reads in place (the other's stay unread).
    func weightBytes(running executor: SIMDExecutor) -> Double { weightBytes + Double(executor.mappedBytes) }

    /// Activation bytes of one run of `plan`: the SIMD executor's arena
    /// (exact: the layout it will allocate), or for the reference executor
    /// the whole batch's NCHW values, planned the same way, plus the
    /// temporaries its kernels make. Sizes beyond any machine are not
    /// planned: their bytes are estimated from the largest map alone.
    func activationBytes(_ executor: SIMDExecutor?, batch: Int, inputHeight h: Int, inputWidth w: Int, scale: Double, threads: Int,
                         plan: (Int, Int) -> ModelPlan) -> Double {
        let widest = Double(config.blockOutChannels.max() ?? 1)
        let largestMap = Double(h) * Double(w) * scale * scale * widest * 4
        guard largestMap < 1e13 else { return largestMap }
        let p = plan(h, w)
        if let executor {
            let s = schedule(executor, plan: plan, height: h, width: w, threads: threads) ?? executor.fullSchedule(p)
            return Double(executor.layout(p, s, threads: threads).bytes)
        }
        let scratch = p.ops.map { op -> Int in
            let x = p.values[op.inputs[0]], n = x.height * x.width
            switch op {
            case .upsampleConv: return batch * x.channels * 4 * n
            case .attention: return 4 * x.channels * n + n
            default: return 0
            }
        }
        return Double(ActivationLayout(p, valueFloats: p.values.map { batch * $0.channels * $0.height * $0.width }, scratchFloats: scratch).bytes)
    }

    /// The schedule a run of `plan` at `height x width` takes: the full-map
    /// execution when everything fits `memoryLimit`, else the banded one
    /// that fits with the least recomputation (nil: none fits). Planned once per size.
    func schedule(_ executor: SIMDExecutor, plan: (Int, Int) -> ModelPlan, height h: Int, width w: Int, threads: Int) -> BandedSchedule? {
        let key = [executor === encoder ? 1 : 0, h, w, threads]
        cacheLock.lock()
        if let s = schedules[key] { cacheLock.unlock(); return s }
        let forced = override
        cacheLock.unlock()
        let p = plan(h, w)
        let s: BandedSchedule?
        if let forced {
            s = executor.schedule(p, forced)
        } else {
            // What else a run holds (as `estimatedDecodeBytes` counts it): weights, one image's input and output copies, slack.
            let out = p.values[p.output], input = p.values[p.input]
            let io = Double(out.channels * out.height * out.width) * 13 + Double(input.channels * input.height * input.width) * 12
            s = executor.plannedSchedule(p, arenaLimit: Double(memoryLimit) - weightBytes(running: executor) - io - 64e6, threads: threads)
        }
        cacheLock.lock(); schedules[key] = s; cacheLock.unlock()
        return s
    }

    /// How a decode of one latent of `latentHeight x latentWidth` runs under
    /// `memoryLimit` (nil: not even in bands; the reference backend always runs whole).
    public func decodeSchedule(latentHeight h: Int, latentWidth w: Int, threads: Int = Parallelism.allCores.threads) -> ScheduleSummary? {
        guard let decoder else {
            return ScheduleSummary(banded: false, passes: 1, recomputeFactor: 1, arenaBytes: 0, bandRows: h * config.downsampleFactor)
        }
        guard let s = schedule(decoder, plan: decoderPlan, height: h, width: w, threads: threads) else { return nil }
        let p = decoderPlan(h, w)
        let out = p.values[p.output].height
        return ScheduleSummary(banded: !s.isFull, passes: s.steps.count,
                               recomputeFactor: s.executedFLOPs(p) { decoder.executedFLOPs(p, op: $0) } / decoder.executedFLOPs(p),
                               arenaBytes: decoder.layout(p, s, threads: threads).bytes,
                               bandRows: s.steps.filter { $0.bandRows < $0.height }.map { $0.bandRows * out / $0.height }.max() ?? out)
    }

    /// Estimated peak memory, in bytes, of decoding `batch` latents of
    /// `latentHeight x latentWidth` on `threads` threads: resident weights,
    /// the activations (images decode one after another on the SIMD path)
    /// and the inputs and outputs. Computed before anything is allocated.
    public func estimatedDecodeBytes(batch: Int, latentHeight h: Int, latentWidth w: Int, threads: Int = Parallelism.allCores.threads) -> Double {
        let c = config, f = Double(c.downsampleFactor)
        let pixels = Double(batch) * Double(h) * Double(w) * f * f
        let outputs = pixels * Double(c.outChannels) * (4 * 3 + 1)  // the tensor, its batch copy, the images
        let inputs = Double(batch) * Double(h) * Double(w) * Double(c.vqEmbedDim) * 4 * 3
        let activations = activationBytes(decoder, batch: batch, inputHeight: h, inputWidth: w, scale: f, threads: threads, plan: decoderPlan)
        return (decoder.map(weightBytes(running:)) ?? weightBytes) + activations + outputs + inputs + 64e6  // + slack
    }

    /// Estimated peak memory, in bytes, of encoding `batch` images of
    /// `height x width` (as `estimatedDecodeBytes`).
    public func estimatedEncodeBytes(batch: Int, height: Int, width: Int, threads: Int = Parallelism.allCores.threads) -> Double {
        let c = config
        let pixels = Double(batch) * Double(height) * Double(width)
        let inputs = pixels * Double(c.inChannels) * (4 * 2 + 4)  // the tensor, its feature-map copy, the decoded PNGs
        let activations = activationBytes(encoder, batch: batch, inputHeight: height, inputWidth: width, scale: 1, threads: threads, plan: encoderPlan)
        return (encoder.map(weightBytes(running:)) ?? weightBytes) + activations + inputs + 64e6
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

/// How a decode runs (`MoVQModel.decodeSchedule`).
public struct ScheduleSummary: Sendable, Equatable {
    /// Whether it runs in row bands (false: every map whole).
    public var banded: Bool
    /// Passes over row bands (steps; one per op when not banded).
    public var passes: Int
    /// FLOPs executed over those of the full-map run (1: nothing recomputed).
    public var recomputeFactor: Double
    /// Bytes of the activation arena.
    public var arenaBytes: Int
    /// Rows per band at the output's resolution.
    public var bandRows: Int
}

/// The implementation that runs the decoder.
public enum Backend: Sendable {
    /// The simple reference kernels (NCHW, scalar loops).
    case reference
    /// The SIMD kernels of one ISA tier.
    case simd(KernelTier)

    /// SIMD kernels of the best tier this CPU supports (or `MOVQ_ISA`).
    public static var fast: Backend { .simd(.best) }

    /// A short name: "reference", or the tier's name.
    public var name: String {
        switch self {
        case .reference: return "reference"
        case .simd(let t): return t.name
        }
    }
}
