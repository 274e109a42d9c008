import Foundation
import MoVQKernelCore

/// The autoregressive option (`PriorConfig.kind == "gpt"`): a causal
/// pre-norm transformer that predicts the `height * width * channels` tokens
/// in raster (position, channel) order after a class token, run one token at
/// a time with a key/value cache. Each image of a batch has its own cache and
/// random stream, so results do not depend on the batch or the thread count.
public final class GPTPrior: @unchecked Sendable {
    /// The architecture.
    public let config: PriorConfig
    /// The packed file (kind "maskgit-prior", config kind "gpt").
    public let file: PackedFile
    let kernels: KernelSet
    /// Bytes a forward or sampling run may plan to use.
    public let memoryLimit: Int
    let executor: TransformerExecutor

    /// Tokens per image (`height * width * channels`).
    public var length: Int { config.positions * config.channels }
    /// The decoder named by the file (relative to its folder), if any.
    public var decoderPath: String? {
        file.namedDecoderPath
    }

    /// `memoryLimit` bounds each forward or sampling run (bytes, estimated
    /// from the config and batch before allocating; see `MemoryLimit`).
    public init(contentsOf path: String, tier: KernelTier = .best, memoryLimit: Int = MemoryLimit.defaultBytes) throws {
        self.memoryLimit = memoryLimit
        file = try PackedFile(path: path)
        guard let c = file.header.prior, c.isAutoregressive else { throw MoVQError.invalidInput("\(path) is not an autoregressive (gpt) prior") }
        config = c
        let kernels = tier.kernels
        self.kernels = kernels
        executor = try TransformerExecutor(file: file, kernels: kernels) { TransformerPlans.gptStep(c, batch: $0) }
        file.map.releaseResidentPages()
    }

    /// Estimated bytes of a sampling session of `batch` images: the packed
    /// weights and the planned arena of the step plan (key/value cache included).
    public func estimatedBytes(batch b: Int, threads: Int = Parallelism.allCores.threads) -> Double {
        let drawn = Double(b) * Double(length + 1) * 8
        guard b <= 1 << 16 else { return drawn * Double(config.layers * config.hidden) }
        let layout = TransformerExecutor.layout(TransformerPlans.gptStep(config, batch: b), operators: executor.operators, chunk: kernels.chunk, threads: threads)
        return Double(executor.residentBytes) + Double(layout.bytes) + drawn + 32e6
    }

    /// Logits after the class token and after each given token: per image
    /// `[T + 1][K]` for prefixes `tokens[i]` (all of one length `T <= length`).
    public func logits(tokens: [[Int32]], classes: [Int], threads: Int = Parallelism.allCores.threads) throws -> [[Float]] {
        let t = tokens.first?.count ?? 0
        guard !classes.isEmpty, tokens.count == classes.count, tokens.allSatisfy({ $0.count == t }), t <= length else {
            throw MoVQError.invalidInput("one prefix of at most \(length) tokens per class label, all of one length")
        }
        try check(tokens.flatMap { $0 }, classes, threads: threads)
        let session = Session(self, batch: classes.count, threads: threads)
        var out = [[Float]](repeating: [], count: classes.count)
        var step = session.step(classes.map { -1 - $0 })
        for i in out.indices { out[i] += step[i] }
        for s in 0..<t {
            step = session.step(tokens.map { Int($0[s]) })
            for i in out.indices { out[i] += step[i] }
        }
        return out
    }

    /// Samples token maps `[B, c, height, width]`: image `i` has class
    /// `classes[i]` and the random stream `SeededGenerator(seed: seeds[i])`.
    /// `onStep(t)` is called after each token.
    public func sample(classes: [Int], seeds: [UInt64], settings: AutoregressiveSettings = AutoregressiveSettings(),
                       threads: Int = Parallelism.allCores.threads, onStep: (Int) -> Void = { _ in }) throws -> IndexMap {
        try settings.validate()
        guard !classes.isEmpty, seeds.count == classes.count else { throw MoVQError.invalidInput("one seed per class label") }
        try check([], classes, threads: threads)
        var noise = seeds.map { SeededGenerator(seed: $0) }
        let session = Session(self, batch: classes.count, threads: threads)
        var logits = session.step(classes.map { -1 - $0 })
        var drawn = [[Int32]](repeating: [], count: classes.count)
        for t in 0..<length {
            var next: [Int] = []
            for i in classes.indices {
                let code = AutoregressiveSampler.draw(AutoregressiveSampler.filtered(logits[i][...], settings), noise[i].nextUniform())
                drawn[i].append(Int32(code)); next.append(code)
            }
            if t + 1 < length { logits = session.step(next) }
            onStep(t)
        }
        let c = config, n = c.positions
        var values = [Int32](repeating: 0, count: classes.count * length)
        for (i, seq) in drawn.enumerated() {
            for q in 0..<n { for ch in 0..<c.channels { values[(i * c.channels + ch) * n + q] = seq[q * c.channels + ch] } }
        }
        return try IndexMap(shape: [classes.count, c.channels, c.height, c.width], values: values)
    }

    func check(_ tokens: [Int32], _ classes: [Int], threads: Int) throws {
        try MemoryLimit.check("autoregressive sampling of \(classes.count) token map(s) of \(config.height)x\(config.width)",
                              estimate: estimatedBytes(batch: classes.count, threads: threads), limit: memoryLimit)
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.codes }) { throw MoVQError.invalidInput("token \(bad) is outside 0..<\(config.codes)") }
        if let bad = classes.first(where: { $0 < 0 || $0 > config.classes }) {
            throw MoVQError.invalidInput("class \(bad) is outside 0...\(config.classes) (\(config.classes) = unconditional)")
        }
    }

    /// One sampling session: the step plan's instance, whose arena holds the
    /// key/value cache, and the step that extends it.
    final class Session {
        let prior: GPTPrior, instance: TransformerExecutor.Instance
        var position = 0

        init(_ p: GPTPrior, batch: Int, threads: Int) {
            prior = p
            instance = p.executor.instance(batch: batch, threads: threads)
        }

        /// Feeds one input per image (`-1 - class` for the class token, else
        /// a code) and returns the next-token logits per image.
        func step(_ inputs: [Int]) -> [[Float]] {
            let codes = prior.config.codes
            var logits: [[Float]] = []
            prior.executor.run(instance, tokens: inputs.map { Int32($0) }, classes: [], step: position, profiler: nil) { _, h, np in
                logits = inputs.indices.map { i in (0..<codes).map { h[$0 * np + i] } }
            }
            position += 1
            return logits
        }
    }
}
