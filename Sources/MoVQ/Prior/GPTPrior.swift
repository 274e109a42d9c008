import Foundation
import MoVQKernelCore

/// The autoregressive option (`PriorConfig.kind == "gpt"`): a causal
/// pre-norm transformer that predicts the `height * width * channels` tokens
/// in raster (position, channel) order after a class token, run one token at
/// a time with a key/value cache. Each image of a batch has its own cache and
/// random stream, so results do not depend on the batch or the thread count.
public final class GPTPrior: @unchecked Sendable {
    public let config: PriorConfig
    public let file: PackedFile
    let kernels: KernelSet
    /// Bytes a forward or sampling run may plan to use.
    public let memoryLimit: Int
    let tokenEmbeddings: [Float], classEmbeddings: [Float], positionEmbeddings: [Float]
    let layers: [PriorLayer]
    let finalNorm: PriorNorm
    let head: PriorLinear

    /// Tokens per image (`height * width * channels`).
    public var length: Int { config.positions * config.channels }
    /// The decoder named by the file (relative to its folder), if any.
    public var decoderPath: String? {
        file.namedDecoderPath
    }

    /// `memoryLimit` bounds each forward or sampling run (bytes, estimated
    /// from the config and batch before allocating; see `MemoryLimit`).
    public init(contentsOf path: String, kernels: KernelSet = Platform.kernels, memoryLimit: Int = MemoryLimit.defaultBytes) throws {
        self.memoryLimit = memoryLimit
        file = try PackedFile(path: path)
        guard let c = file.header.prior, c.isAutoregressive else { throw MoVQError.invalidInput("\(path) is not an autoregressive (gpt) prior") }
        config = c
        self.kernels = kernels
        let d = c.hidden, f = file
        tokenEmbeddings = try f.floatArray("tok_emb.weight", shape: [c.codes, d])
        classEmbeddings = try f.floatArray("cls_emb.weight", shape: [c.classes + 1, d])
        positionEmbeddings = try f.floatArray("pos_emb", shape: [c.positions * c.channels + 1, d])
        layers = try (0..<c.layers).map { try PriorLayer(f, "layers.\($0)", c, quads: kernels.quadLinear != nil) }
        finalNorm = try PriorNorm(f, "final_ln", c)
        head = try PriorLinear(f, "head", outputs: c.codes, inputs: d)
    }

    /// Logits after the class token and after each given token: per image
    /// `[T + 1][K]` for prefixes `tokens[i]` (all of one length `T <= length`).
    public func logits(tokens: [[Int32]], classes: [Int], threads: Int = Parallelism.allCores.threads) throws -> [[Float]] {
        let t = tokens.first?.count ?? 0
        guard !classes.isEmpty, tokens.count == classes.count, tokens.allSatisfy({ $0.count == t }), t <= length else {
            throw MoVQError.invalidInput("one prefix of at most \(length) tokens per class label, all of one length")
        }
        try check(tokens.flatMap { $0 }, classes)
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
        try check([], classes)
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

    func check(_ tokens: [Int32], _ classes: [Int]) throws {
        try MemoryLimit.check("autoregressive sampling of \(classes.count) token map(s) of \(config.height)x\(config.width)",
                              estimate: config.estimatedGPTBytes(batch: classes.count), limit: memoryLimit)
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.codes }) { throw MoVQError.invalidInput("token \(bad) is outside 0..<\(config.codes)") }
        if let bad = classes.first(where: { $0 < 0 || $0 > config.classes }) {
            throw MoVQError.invalidInput("class \(bad) is outside 0...\(config.classes) (\(config.classes) = unconditional)")
        }
    }

    /// The key/value caches of one batch and the step that extends them.
    final class Session {
        let prior: GPTPrior, b: Int, np: Int, rt: ExecutionContext
        var position = 0
        /// Per layer and image: keys and values `[length + 1][hidden]`.
        var keys: [[[Float]]], values: [[[Float]]]
        let x: UnsafeMutableBufferPointer<Float>, y: UnsafeMutableBufferPointer<Float>, h: UnsafeMutableBufferPointer<Float>
        let qkv: UnsafeMutableBufferPointer<Float>, a: UnsafeMutableBufferPointer<Float>

        init(_ p: GPTPrior, batch: Int, threads: Int) {
            prior = p; b = batch
            let c = p.config, chunk = p.kernels.chunk, d = c.hidden
            let np = (batch + chunk - 1) / chunk * chunk + 2 * chunk
            self.np = np
            rt = ExecutionContext(kernels: p.kernels, parallelism: Parallelism(threads: threads))
            let empty = [Float](repeating: 0, count: (p.length + 1) * d)
            keys = [[[Float]]](repeating: [[Float]](repeating: empty, count: batch), count: c.layers)
            values = keys
            func buffer(_ rows: Int) -> UnsafeMutableBufferPointer<Float> {
                let buf = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * np)
                buf.initialize(repeating: 0)
                return buf
            }
            x = buffer(d); y = buffer(d); h = buffer(max(c.isGEGLU ? 2 * c.mlp : c.mlp, c.codes)); qkv = buffer(3 * d); a = buffer(d)
        }

        deinit { for buf in [x, y, h, qkv, a] { buf.deallocate() } }

        /// Feeds one input per image (`-1 - class` for the class token, else
        /// a code) and returns the next-token logits per image.
        func step(_ inputs: [Int]) -> [[Float]] {
            let p = prior, c = p.config, d = c.hidden, t = position
            precondition(inputs.count == b && t <= p.length)
            var x = self.x, y = self.y
            for i in 0..<b {
                let v = inputs[i]
                for k in 0..<d {
                    let e = v < 0 ? p.classEmbeddings[(-1 - v) * d + k] : p.tokenEmbeddings[v * d + k]
                    x[k * np + i] = e + p.positionEmbeddings[t * d + k]
                }
            }
            let ops = PlanarOps(rt: rt, planeStride: np, positions: b, config: c)
            let heads = c.heads, dh = d / heads, scale = 1 / Float(dh).squareRoot()
            for (l, layer) in p.layers.enumerated() {
                ops.norm(layer.ln1, x.baseAddress!, y.baseAddress!)
                ops.linear(layer.qkv, y.baseAddress!, qkv.baseAddress!)
                for i in 0..<b {
                    for k in 0..<d {
                        keys[l][i][t * d + k] = qkv[(d + k) * np + i]
                        values[l][i][t * d + k] = qkv[(2 * d + k) * np + i]
                    }
                    // Causal attention of the new token over positions 0...t, per head.
                    for hd in 0..<heads {
                        var scores = [Float](repeating: 0, count: t + 1)
                        for j in 0...t {
                            var s: Float = 0
                            for k in (hd * dh)..<((hd + 1) * dh) { s += qkv[k * np + i] * keys[l][i][j * d + k] }
                            scores[j] = s * scale
                        }
                        let mx = scores.max()!
                        var total: Float = 0
                        for j in 0...t { scores[j] = Foundation.exp(scores[j] - mx); total += scores[j] }
                        for k in (hd * dh)..<((hd + 1) * dh) {
                            var o: Float = 0
                            for j in 0...t { o += scores[j] * values[l][i][j * d + k] }
                            a[k * np + i] = o / total
                        }
                    }
                }
                ops.linear(layer.out, a.baseAddress!, y.baseAddress!, residual: x.baseAddress!)
                swap(&x, &y)
                ops.norm(layer.ln2, x.baseAddress!, y.baseAddress!)
                ops.linear(layer.fc1, y.baseAddress!, h.baseAddress!)
                ops.gelu(h.baseAddress!, rows: c.mlp, gate: c.isGEGLU ? h.baseAddress! + c.mlp * np : nil)
                ops.linear(layer.fc2, h.baseAddress!, y.baseAddress!, residual: x.baseAddress!)
                swap(&x, &y)
            }
            ops.norm(p.finalNorm, x.baseAddress!, y.baseAddress!)
            ops.linear(p.head, y.baseAddress!, h.baseAddress!)
            position += 1
            return (0..<b).map { i in (0..<c.codes).map { h[$0 * np + i] } }
        }
    }
}
