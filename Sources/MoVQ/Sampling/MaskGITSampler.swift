import Foundation

/// Settings of MaskGIT sampling (Docs/MASKGIT.md); the defaults are the paper's.
public struct MaskGITSettings: Sendable, Equatable {
    /// Decoding steps `T`.
    public var steps: Int = 8
    /// Logits are divided by it before sampling.
    public var temperature: Float = 1
    /// Gumbel noise scale on the confidences, annealed as `tau0 (1 - r)`.
    public var choiceTemperature: Float = 4.5
    /// How many tokens stay masked after each step.
    public var schedule: MaskSchedule = .cosine
    /// Classifier-free guidance scale: `uncond + s (cond - uncond)`; 0 turns
    /// it off (one forward per step instead of a doubled batch).
    public var guidance: Float = 0
    /// Where the random choices come from.
    public var stream: MaskGITRandomStream = .perImage

    /// Settings with the official MaskGIT defaults (8 steps, choice temperature 4.5, cosine schedule).
    public init(steps: Int = 8, temperature: Float = 1, choiceTemperature: Float = 4.5, schedule: MaskSchedule = .cosine, guidance: Float = 0,
                stream: MaskGITRandomStream = .perImage) {
        self.steps = steps; self.temperature = temperature; self.choiceTemperature = choiceTemperature
        self.schedule = schedule; self.guidance = guidance; self.stream = stream
    }

    func validate() throws {
        if case .jax = stream, temperature != 1 || guidance != 0 {
            throw MoVQError.invalidInput("the JAX random stream replays the official loop: temperature 1, no guidance")
        }
        guard steps >= 1 && steps <= 1024 else { throw MoVQError.invalidInput("steps must be 1...1024, got \(steps)") }
        // Below 0.01 the scaled logits overflow (the draw would be NaN).
        guard temperature >= 0.01 && temperature.isFinite else { throw MoVQError.invalidInput("temperature must be at least 0.01, got \(temperature)") }
        guard choiceTemperature >= 0 && choiceTemperature.isFinite else { throw MoVQError.invalidInput("choice temperature must be >= 0") }
        guard guidance.isFinite else { throw MoVQError.invalidInput("guidance must be finite") }
    }
}

/// The random stream of MaskGIT sampling.
public enum MaskGITRandomStream: Sendable, Equatable {
    /// Ours: image `i` draws from `SeededGenerator(seed: seeds[i])` (the same
    /// image alone or in any batch).
    case perImage
    /// The official JAX loop's: the batch shares `jax.random.PRNGKey(seeds[0])`
    /// (`JAXMaskGITNoise`); `partitionable` is `jax_threefry_partitionable`.
    case jax(partitionable: Bool)
}

/// How one image's random choices are made in each MaskGIT step.
public protocol MaskGITNoise {
    /// Called once per step before its draws: `positions` x `channels` tokens of `codes` codes.
    mutating func startStep(positions: Int, channels: Int, codes: Int) throws
    /// The token of row `row` (position * channels + channel) drawn from
    /// `softmax(logits * inverseTemperature)`, and its log-probability.
    /// Called from several threads at once (the step's positions are split).
    func drawToken(_ logits: UnsafePointer<Float>, row: Int, codes: Int, inverseTemperature: Float,
                   scratch: UnsafeMutablePointer<Float>) -> (token: Int, logProbability: Float)
    /// The Gumbel noise on position `position`'s confidence.
    func choiceGumbel(position: Int) -> Float
}

/// Our default draws from uniforms in the documented order: per step one per
/// position and channel for the tokens (`CategoricalDraw`, inverse CDF), then
/// one per position for the Gumbel noise.
public struct UniformMaskGITNoise<U: UniformSource>: MaskGITNoise {
    public var source: U
    var tokenUniforms: [Double] = [], gumbelUniforms: [Double] = []

    public init(source: U) { self.source = source }

    public mutating func startStep(positions n: Int, channels: Int, codes: Int) {
        tokenUniforms = (0..<(n * channels)).map { _ in source.nextUniform() }
        gumbelUniforms = (0..<n).map { _ in source.nextUniform() }
    }

    public func drawToken(_ logits: UnsafePointer<Float>, row: Int, codes k: Int, inverseTemperature: Float,
                          scratch: UnsafeMutablePointer<Float>) -> (token: Int, logProbability: Float) {
        CategoricalDraw.draw(logits, codes: k, inverseTemperature: inverseTemperature, uniform: tokenUniforms[row], scratch: scratch)
    }

    public func choiceGumbel(position q: Int) -> Float { Float(-Foundation.log(-Foundation.log(gumbelUniforms[q]))) }
}

/// Where a sampler's random numbers come from: uniforms in (0, 1), drawn in
/// a fixed order (per step: one per position and channel for the token
/// draws, then one per position for the Gumbel noise).
public protocol UniformSource {
    mutating func nextUniform() -> Double
}

extension SeededGenerator: UniformSource {
    /// A uniform in (0, 1) from 53 random bits (never 0 or 1).
    public mutating func nextUniform() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992 }
}

/// The official MaskGIT decoding loop (`parallel_decode`), per image,
/// exactly as Docs/MASKGIT.md describes it. Every image draws from its own
/// `UniformSource`, so image `i` of a batch is the image its source gives
/// alone, and the model's logits do not depend on the batch either.
public enum MaskGITSampler {
    /// Logits `[B][N][c][K]` for token maps `[B][N][c]` and class labels `[B]`.
    public typealias Logits = (_ tokens: [Int32], _ classes: [Int]) throws -> [Float]

    /// Samples token maps. `initial[i]` is image i's `[N][c]` map with MASK
    /// (`codes`) where unknown (a position is masked in all its channels or
    /// none); `classes[i]` its label. Returns every step's sampled map per
    /// image (`[B][T][N*c]`; the last is the result). With guidance, `logits`
    /// gets one batch of `2B` (conditional, then unconditional labels).
    /// `threads` split each step's positions (the result does not depend on it).
    public static func sample<U: UniformSource>(initial: [[Int32]], classes: [Int], codes: Int, channels: Int,
                                                unconditionalClass: Int, settings: MaskGITSettings, noise: inout [U],
                                                threads: Int = 1, logits: Logits, onStep: (Int) -> Void = { _ in }) throws -> [[[Int32]]] {
        var sources = noise.map { UniformMaskGITNoise(source: $0) }
        defer { noise = sources.map(\.source) }
        return try sample(initial: initial, classes: classes, codes: codes, channels: channels, unconditionalClass: unconditionalClass,
                          settings: settings, noiseSources: &sources, threads: threads, logits: logits, onStep: onStep)
    }

    /// `sample` with each image's draws made by its `MaskGITNoise`.
    public static func sample<N: MaskGITNoise>(initial: [[Int32]], classes: [Int], codes: Int, channels: Int,
                                               unconditionalClass: Int, settings: MaskGITSettings, noiseSources noise: inout [N],
                                               threads: Int = 1, logits: Logits, onStep: (Int) -> Void = { _ in }) throws -> [[[Int32]]] {
        try settings.validate()
        let b = initial.count, k = codes, mask = Int32(codes)
        guard b >= 1, classes.count == b, noise.count == b, channels >= 1, let n0 = initial.first?.count, n0 % channels == 0,
              initial.allSatisfy({ $0.count == n0 }) else {
            throw MoVQError.invalidInput("sampler needs one initial map, class and noise source per image, all of the same size")
        }
        let n = n0 / channels
        for m in initial {
            for q in 0..<n {
                let row = m[(q * channels)..<((q + 1) * channels)]
                guard row.allSatisfy({ $0 >= 0 && $0 <= mask }), row.allSatisfy({ $0 == mask }) || !row.contains(mask) else {
                    throw MoVQError.invalidInput("initial tokens must be 0...\(codes) (MASK = \(codes)), masked in all channels of a position or none")
                }
            }
        }
        var cur = initial
        let unknownAtStart = cur.map { m in (0..<n).filter { m[$0 * channels] == mask }.count }
        var outputs = [[[Int32]]](repeating: [], count: b)
        for t in 0..<settings.steps {
            let all: ArraySlice<Float>
            if settings.guidance != 0 {
                var both = try logits((cur + cur).flatMap { $0 }, classes + [Int](repeating: unconditionalClass, count: b))
                let half = both.count / 2, s = settings.guidance
                // Guided logits in place over the conditional half (no second logits-sized array per step).
                both.withUnsafeMutableBufferPointer { p in
                    for i in 0..<half { p[i] = p[half + i] + s * (p[i] - p[half + i]) }
                }
                all = both[0..<half]
            } else {
                all = try logits(cur.flatMap { $0 }, classes)[...]
            }
            guard all.count == b * n * channels * k else { throw MoVQError.invalidInput("logits have \(all.count) values, expected \(b * n * channels * k)") }
            let r = Double(t + 1) / Double(settings.steps)
            for i in 0..<b {
                try noise[i].startStep(positions: n, channels: channels, codes: k)
                let (sampled, next) = step(logits: all[(i * n * channels * k)..<((i + 1) * n * channels * k)], current: cur[i],
                                           positions: n, channels: channels, codes: k, r: r, unknownAtStart: unknownAtStart[i],
                                           settings: settings, noise: noise[i], parallelism: Parallelism(threads: threads))
                outputs[i].append(sampled)
                cur[i] = next
            }
            onStep(t)
        }
        return outputs
    }

    /// One step for one image: returns (sampled map, map with the least
    /// confident positions re-masked). The uniforms are taken first, in the
    /// documented order, so threads split positions without changing a bit.
    static func step<N: MaskGITNoise>(logits: ArraySlice<Float>, current: [Int32], positions n: Int, channels: Int, codes k: Int,
                                      r: Double, unknownAtStart n0: Int, settings: MaskGITSettings, noise draws: N,
                                      parallelism: Parallelism = Parallelism(threads: 1)) -> ([Int32], [Int32]) {
        let mask = Int32(k)
        var sampled = current
        var confidence = [Float](repeating: 0, count: n)
        let inverseTemperature = 1 / settings.temperature
        logits.withUnsafeBufferPointer { lp in
            sampled.withUnsafeMutableBufferPointer { sp in
                confidence.withUnsafeMutableBufferPointer { cp in
                    let box = UnsafeSendableBox((lp.baseAddress!, sp.baseAddress!, cp.baseAddress!))
                    parallelism.forEachRange(n, minimumChunk: 8) { range in
                        let (logits, sampled, confidence) = box.value
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: CategoricalDraw.scratchCount(codes: k))
                        defer { scratch.deallocate() }
                        // Known positions keep their tokens; their confidence is +inf below.
                        for q in range where current[q * channels] == mask {
                            var conf: Float = 0
                            for ch in 0..<channels {
                                let i = q * channels + ch
                                let (token, logp) = draws.drawToken(logits + i * k, row: i, codes: k, inverseTemperature: inverseTemperature,
                                                                    scratch: scratch)
                                sampled[i] = Int32(token)
                                conf += logp
                            }
                            confidence[q] = conf
                        }
                    }
                }
            }
        }
        let unknownNow = (0..<n).filter { current[$0 * channels] == mask }.count
        var maskLen = Int((Float(n0) * settings.schedule.gamma(r, unknownAtStart: n0)).rounded(.down))
        maskLen = max(1, min(unknownNow - 1, maskLen))
        let anneal = Float(Double(settings.choiceTemperature) * (1 - r))
        for q in 0..<n {
            let g = draws.choiceGumbel(position: q)
            confidence[q] = current[q * channels] == mask ? confidence[q] + anneal * g : .infinity
        }
        var next = sampled
        if maskLen < n {
            let cutoff = confidence.sorted()[maskLen]
            for q in 0..<n where confidence[q] < cutoff {
                for ch in 0..<channels { next[q * channels + ch] = mask }
            }
        }
        return (sampled, next)
    }
}
