import Foundation
import MoVQKernelCore

/// A loaded MaskGIT prior (`PriorConfig`): turns token maps into logits with
/// the SIMD kernels of the chosen tier.
///
/// Activations are planar, `[hidden][positions]`, with every sequence of a
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


    let tokenEmbeddings: [[Float]], classEmbeddings: [Float], positionEmbeddings: [Float]
    let embeddingNorm: PriorNorm?, finalNorm: PriorNorm?
    let layers: [PriorLayer]
    let headDense: PriorLinear, headNorm: PriorNorm
    /// Per channel: logits = tied token embeddings (codes only) x h + head bias.
    let heads: [PriorLinear]
    private let lock = NSLock()

    /// Opens a packed prior. Throws `MoVQError` on a missing or corrupt file,
    /// a file of another kind, or tensors that do not fit the config.
    /// `memoryLimit` bounds each forward or sampling run (bytes, estimated
    /// from the config and batch before allocating; see `MemoryLimit`).
    public init(contentsOf path: String, kernels: KernelSet = Platform.kernels, memoryLimit: Int = MemoryLimit.defaultBytes) throws {
        self.memoryLimit = memoryLimit
        file = try PackedFile(path: path)
        guard let c = file.header.prior else { throw MoVQError.invalidInput("\(path) is a \(file.header.kind), not a MaskGIT prior") }
        guard !c.isAutoregressive else { throw MoVQError.invalidInput("\(path) is an autoregressive (gpt) prior: open it as a GPTPrior") }
        config = c
        self.kernels = kernels
        let f = file, d = c.hidden
        func w(_ n: String, _ s: [Int]) throws -> [Float] { try f.floatArray(n, shape: s) }
        let quads = kernels.quadLinear != nil
        func linear(_ p: String, _ o: Int, _ i: Int) throws -> PriorLinear { try PriorLinear(f, p, outputs: o, inputs: i, quads: quads) }
        func norm(_ p: String) throws -> PriorNorm { try PriorNorm(f, p, c) }
        let tokens = try (0..<c.channels).map { try w("tok_emb.\($0).weight", [c.codes + 1, d]) }
        tokenEmbeddings = tokens
        classEmbeddings = try w("cls_emb.weight", [c.classes + 1, d])
        positionEmbeddings = try w("pos_emb", [c.positions + 1, d])
        embeddingNorm = c.isPostNorm ? try norm("emb_ln") : nil
        finalNorm = c.isPostNorm ? nil : try norm("final_ln")
        layers = try (0..<c.layers).map { try PriorLayer(f, "layers.\($0)", c, quads: quads) }
        headDense = try linear("head.dense", d, d)
        headNorm = try norm("head.ln")
        heads = try (0..<c.channels).map { ch in
            let bias = try w("head_bias.\(ch)", [c.codes])
            return tokens[ch].withUnsafeBufferPointer { emb in bias.withUnsafeBufferPointer { b in
                PriorLinear(UnsafeBufferPointer(rebasing: emb[0..<(c.codes * d)]), b, outputs: c.codes, inputs: d)
            } }
        }
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
                              estimate: c.estimatedMaskGITBytes(sequences: b), limit: memoryLimit)
        lock.lock(); defer { lock.unlock() }
        let rt = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: threads), profiler: profiler)
        return forward(tokens, classes, rt)
    }

    private func forward(_ tokens: [Int32], _ classes: [Int], _ rt: ExecutionContext) -> [Float] {
        let c = config, d = c.hidden, s = c.positions + 1, b = classes.count, p = b * s
        let chunk = kernels.chunk, np = (p + chunk - 1) / chunk * chunk + 2 * chunk
        let mlpRows = c.isGEGLU ? 2 * c.mlp : c.mlp
        func take(_ n: Int) -> UnsafeMutableBufferPointer<Float> { .allocate(capacity: n) }
        var x = take(d * np), y = take(d * np)
        let qkv = take(3 * d * np), a = take(d * np), h = take(max(mlpRows, c.codes) * np)
        let scratchPer = Attention.scratchFloats(channels: d / c.heads, keys: s, chunk: kernels.chunk)
        let scratch = take(scratchPer * rt.parallelism.threads)
        defer { for buf in [x, y, qkv, a, h, scratch] { buf.deallocate() } }
        for buf in [x, y, qkv, a, h] { buf.update(repeating: 0) }  // slack stays finite

        // Embeddings: class token, then the sum of the c token embeddings; plus positions.
        rt.timed("embeddings") {
            for i in 0..<b {
                for q in 0..<s {
                    let col = i * s + q
                    for k in 0..<d { x[k * np + col] = positionEmbeddings[q * d + k] }
                    if q == 0 {
                        for k in 0..<d { x[k * np + col] += classEmbeddings[classes[i] * d + k] }
                    } else {
                        for ch in 0..<c.channels {
                            let t = Int(tokens[((i * c.positions) + q - 1) * c.channels + ch])
                            for k in 0..<d { x[k * np + col] += tokenEmbeddings[ch][t * d + k] }
                        }
                    }
                }
            }
        }
        let ops = PlanarOps(rt: rt, planeStride: np, positions: p, config: c)

        if let e = embeddingNorm { ops.norm(e, x.baseAddress!, x.baseAddress!) }
        let headCount = c.heads, dh = d / headCount, scale = 1 / Float(dh).squareRoot()
        for layer in layers {
            // Attention.
            var src = x
            if !c.isPostNorm { ops.norm(layer.ln1, x.baseAddress!, y.baseAddress!); src = y }
            ops.linear(layer.qkv, src.baseAddress!, qkv.baseAddress!)
            rt.timed("attention \(headCount) heads x \(s)", flops: 4 * Double(s * s * d * b)) {
                // Heads in parallel, each on one thread with its own scratch (small GEMMs
                // split across threads cost more in dispatch than they gain). Sequences go
                // in order: a head's output may run a chunk into the next sequence's columns.
                let serial = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: 1))
                let qb = UnsafeSendableBox(qkv.baseAddress!), ab = UnsafeSendableBox(a.baseAddress!), sb = UnsafeSendableBox(scratch.baseAddress!)
                for i in 0..<b {
                    rt.parallelism.forEachItem(headCount) { worker, hd in
                        let base = qb.value + hd * dh * np + i * s
                        Attention.attend(q: base, queries: s, queryStride: np, k: base + d * np, v: base + 2 * d * np, keys: s, keyStride: np,
                                         out: ab.value + hd * dh * np + i * s, outStride: np, channels: dh, scale: scale,
                                         scratch: sb.value + worker * scratchPer, serial)
                    }
                }
            }
            ops.linear(layer.out, a.baseAddress!, y.baseAddress!, residual: x.baseAddress!)
            if c.isPostNorm { ops.norm(layer.ln1, y.baseAddress!, x.baseAddress!) } else { swap(&x, &y) }
            // MLP.
            src = x
            if !c.isPostNorm { ops.norm(layer.ln2, x.baseAddress!, y.baseAddress!); src = y }
            ops.linear(layer.fc1, src.baseAddress!, h.baseAddress!)
            // GEGLU: value rows 0..<mlp times gelu(gate rows mlp..<2 mlp).
            ops.gelu(h.baseAddress!, rows: c.mlp, gate: c.isGEGLU ? h.baseAddress! + c.mlp * np : nil)
            ops.linear(layer.fc2, h.baseAddress!, y.baseAddress!, residual: x.baseAddress!)
            if c.isPostNorm { ops.norm(layer.ln2, y.baseAddress!, x.baseAddress!) } else { swap(&x, &y) }
        }
        if let f = finalNorm { ops.norm(f, x.baseAddress!, x.baseAddress!) }

        // Head: logits[ch] = E_ch h' + bias_ch with h' = LN(gelu(dense(h))).
        ops.linear(headDense, x.baseAddress!, y.baseAddress!)
        ops.gelu(y.baseAddress!, rows: d)
        ops.norm(headNorm, y.baseAddress!, y.baseAddress!)
        var out = [Float](repeating: 0, count: b * c.positions * c.channels * c.codes)
        for (ch, head) in heads.enumerated() {
            ops.linear(head, y.baseAddress!, h.baseAddress!)
            for i in 0..<b {
                for q in 0..<c.positions {
                    let col = i * s + 1 + q, o = ((i * c.positions + q) * c.channels + ch) * c.codes
                    for k in 0..<c.codes { out[o + k] = h[k * np + col] }
                }
            }
        }
        return out
    }
}

extension MaskGITPrior {
    /// Samples token maps with MaskGIT: image `i` has class `classes[i]`
    /// (`config.classes` = unconditional) and its own random stream
    /// `SeededGenerator(seed: seeds[i])`, so it is the same image in any
    /// batch and on any thread count. `initial` gives known tokens per image
    /// (`[N][c]`, MASK = `config.codes` where unknown; nil = all unknown).
    /// `onStep` is called after each step. Returns `[B, c, height, width]`.
    public func sample(classes: [Int], seeds: [UInt64], settings: MaskGITSettings = MaskGITSettings(),
                       initial: [[Int32]]? = nil, threads: Int = Parallelism.allCores.threads, onStep: (Int) -> Void = { _ in }) throws -> IndexMap {
        let c = config, n = c.positions
        guard !classes.isEmpty, seeds.count == classes.count else {
            throw MoVQError.invalidInput("one seed per image: \(seeds.count) seeds for \(classes.count) classes")
        }
        let start = initial ?? classes.map { _ in [Int32](repeating: Int32(c.codes), count: n * c.channels) }
        var noise = seeds.map { SeededGenerator(seed: $0) }
        let steps = try MaskGITSampler.sample(initial: start, classes: classes, codes: c.codes, channels: c.channels,
                                              unconditionalClass: c.classes, settings: settings, noise: &noise,
                                              logits: { try self.logits(tokens: $0, classes: $1, threads: threads) }, onStep: onStep)
        // [B][N][c] -> [B, c, h, w]
        var values = [Int32](repeating: 0, count: classes.count * n * c.channels)
        for (i, s) in steps.enumerated() {
            let last = s[s.count - 1]
            for q in 0..<n { for ch in 0..<c.channels { values[(i * c.channels + ch) * n + q] = last[q * c.channels + ch] } }
        }
        return try IndexMap(shape: [classes.count, c.channels, c.height, c.width], values: values)
    }
}
