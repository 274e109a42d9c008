import Foundation
import MoVQKernelCore

/// A loaded MaskGIT prior (`PriorConfig`): turns token maps into logits with
/// the SIMD kernels of the chosen tier.
///
/// Activations are feature-major, `[hidden][positions]`, with every sequence of a
/// batch (class token + `height * width` positions) side by side, so linear
/// layers are single planar GEMMs over the whole batch, norms and GELU run
/// along positions, and attention runs per sequence and head. Every output
/// position is computed in a fixed order, so logits do not depend on the
/// batch composition or the thread count.
public final class MaskGITPrior: @unchecked Sendable {
    /// The architecture.
    public let config: PriorConfig
    /// The packed file (kind "maskgit-prior").
    public let file: PackedFile
    /// The decoder named by the file (relative to its folder), if any.
    public var decoderPath: String? {
        file.namedDecoderPath
    }
    /// When set, forwards record time per operator here.
    public var profiler: Profiler?
    let kernels: KernelSet
    /// Bytes a forward or sampling run may plan to use.
    public let memoryLimit: Int
    let executor: TransformerExecutor
    private var instance: TransformerExecutor.Instance? = nil
    private let lock = NSLock()

    /// Opens a packed prior. Throws `MoVQError` on a missing or corrupt file,
    /// a file of another kind, or tensors that do not fit the config.
    /// `memoryLimit` bounds each forward or sampling run (bytes, estimated
    /// from the config and batch before allocating; see `MemoryLimit`).
    public init(contentsOf path: String, tier: KernelTier = .best, memoryLimit: Int = MemoryLimit.defaultBytes) throws {
        self.memoryLimit = memoryLimit
        file = try PackedFile(path: path)
        guard let c = file.header.prior else { throw MoVQError.invalidInput("\(path) is a \(file.header.kind), not a MaskGIT prior") }
        guard !c.isAutoregressive else { throw MoVQError.invalidInput("\(path) is an autoregressive (gpt) prior: open it as a GPTPrior") }
        config = c
        let kernels = tier.kernels
        self.kernels = kernels
        executor = try TransformerExecutor(file: file, kernels: kernels) { TransformerPlans.maskGIT(c, sequences: $0) }
        file.map.releaseResidentPages()
    }

    /// Logits `[B][N][c][K]` (flattened) for token maps `tokens` (`[B][N][c]`
    /// flattened, ids `0...K`, `K` = MASK) and `classes` (`[B]`, `0...classes`,
    /// the last being unconditional).
    public func logits(tokens: [Int32], classes: [Int], threads: Int = Parallelism.allCores.threads) throws -> [Float] {
        let c = config, b = classes.count, n = c.positions
        guard b >= 1, tokens.count == b * n * c.channels else {
            throw MoVQError.invalidInput("tokens must be [\(b), \(n), \(c.channels)] for \(b) class labels, got \(tokens.count) values")
        }
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) > c.codes }) {
            throw MoVQError.invalidInput("token \(tokens[bad]) at flat index \(bad) is outside 0...\(c.codes) (\(c.codes) = MASK)")
        }
        if let bad = classes.first(where: { $0 < 0 || $0 > c.classes }) {
            throw MoVQError.invalidInput("class \(bad) is outside 0...\(c.classes) (\(c.classes) = unconditional)")
        }
        try MemoryLimit.check("a MaskGIT forward over \(b) token map(s) of \(c.height)x\(c.width)",
                              estimate: estimatedBytes(sequences: b, threads: threads), limit: memoryLimit)
        lock.lock(); defer { lock.unlock() }
        if instance?.plan.values[0].width != b * (n + 1) || instance?.threads != threads {
            instance = nil  // free the old arena first
            instance = executor.instance(batch: b, threads: threads)
        }
        let s = n + 1
        var out = [Float](repeating: 0, count: b * n * c.channels * c.codes)
        executor.run(instance!, tokens: tokens, classes: classes, step: 0, profiler: profiler) { ch, h, np in
            for i in 0..<b {
                for q in 0..<n {
                    let col = i * s + 1 + q, o = ((i * n + q) * c.channels + ch) * c.codes
                    for k in 0..<c.codes { out[o + k] = h[k * np + col] }
                }
            }
        }
        return out
    }

    /// Estimated bytes of one forward over `sequences` token maps (each image
    /// of a guided sample counts twice): the packed weights, the planned
    /// arena of the plan at that batch, and the logits with the sampler's copies.
    public func estimatedBytes(sequences b: Int, threads: Int = Parallelism.allCores.threads) -> Double {
        let c = config
        let logits = Double(b) * Double(c.positions) * Double(c.channels) * Double(c.codes) * 4 * 3
        guard b <= 1 << 16 else { return logits }  // beyond any machine: no need to plan
        let layout = TransformerExecutor.layout(TransformerPlans.maskGIT(c, sequences: b), operators: executor.operators, chunk: kernels.chunk, threads: threads)
        return Double(executor.residentBytes) + Double(layout.bytes) + logits + 32e6
    }
}

extension MaskGITPrior {
    /// Samples token maps with MaskGIT: image `i` has class `classes[i]`
    /// (`config.classes` = unconditional) and its own random stream
    /// `SeededGenerator(seed: seeds[i])`, so it is the same image in any
    /// batch and on any thread count. With `settings.stream` `.jax`, the
    /// batch replays the official JAX loop from `PRNGKey(seeds[0])`. `initial` gives known tokens per image
    /// (`[N][c]`, MASK = `config.codes` where unknown; nil = all unknown).
    /// `onStep` is called after each step. Returns `[B, c, height, width]`.
    public func sample(classes: [Int], seeds: [UInt64], settings: MaskGITSettings = MaskGITSettings(),
                       initial: [[Int32]]? = nil, threads: Int = Parallelism.allCores.threads, onStep: (Int) -> Void = { _ in }) throws -> IndexMap {
        let c = config, n = c.positions
        guard !classes.isEmpty, seeds.count == classes.count else {
            throw MoVQError.invalidInput("one seed per image: \(seeds.count) seeds for \(classes.count) classes")
        }
        let start = initial ?? classes.map { _ in [Int32](repeating: Int32(c.codes), count: n * c.channels) }
        func run<N: MaskGITNoise>(_ noise: [N]) throws -> [[[Int32]]] {
            var noise = noise
            return try MaskGITSampler.sample(initial: start, classes: classes, codes: c.codes, channels: c.channels, unconditionalClass: c.classes,
                                             settings: settings, noiseSources: &noise, threads: threads,
                                             logits: { try self.logits(tokens: $0, classes: $1, threads: threads) }, onStep: onStep)
        }
        let steps: [[[Int32]]]
        switch settings.stream {
        case .perImage:
            steps = try run(seeds.map { UniformMaskGITNoise(source: SeededGenerator(seed: $0)) })
        case .jax(let partitionable):
            steps = try run(classes.indices.map { JAXMaskGITNoise(seed: seeds[0], image: $0, batch: classes.count, partitionable: partitionable) })
        }
        // [B][N][c] -> [B, c, h, w]
        var values = [Int32](repeating: 0, count: classes.count * n * c.channels)
        for (i, s) in steps.enumerated() {
            let last = s[s.count - 1]
            for q in 0..<n { for ch in 0..<c.channels { values[(i * c.channels + ch) * n + q] = last[q * c.channels + ch] } }
        }
        return try IndexMap(shape: [classes.count, c.channels, c.height, c.width], values: values)
    }
}
