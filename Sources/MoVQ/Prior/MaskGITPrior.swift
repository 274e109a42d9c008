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
        file.header.metadata["decoder"].map { URL(fileURLWithPath: file.path).deletingLastPathComponent().appendingPathComponent($0).path }
    }
    /// When set, forwards record time per operator here.
    public var profiler: Profiler?
    let kernels: KernelSet

    struct Linear {
        let weights: [Float], bias: [Float], inputs: Int, outputs: Int
        init(_ w: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, outputs o: Int, inputs i: Int) {
            weights = PlanarConvWeights.pack(w, outChannels: o, inChannels: i, kernel: 1)
            bias = PlanarConvWeights.packBias(b, outChannels: o); inputs = i; outputs = o
        }
    }
    struct Norm { let weight: [Float], bias: [Float]? }
    struct Layer { let qkv: Linear, out: Linear, fc1: Linear, fc2: Linear, ln1: Norm, ln2: Norm }

    let tokenEmbeddings: [[Float]], classEmbeddings: [Float], positionEmbeddings: [Float]
    let embeddingNorm: Norm?, finalNorm: Norm?
    let layers: [Layer]
    let headDense: Linear, headNorm: Norm
    /// Per channel: logits = tied token embeddings (codes only) x h + head bias.
    let heads: [Linear]
    private let workspace = Workspace()
    private let lock = NSLock()

    /// Opens a packed prior. Throws `MoVQError` on a missing or corrupt file,
    /// a file of another kind, or tensors that do not fit the config.
    public init(contentsOf path: String, kernels: KernelSet = Platform.kernels) throws {
        file = try PackedFile(path: path)
        guard let c = file.header.prior else { throw MoVQError.invalidInput("\(path) is a \(file.header.kind), not a MaskGIT prior") }
        config = c
        self.kernels = kernels
        let f = file, d = c.hidden
        func w(_ n: String, _ s: [Int]) throws -> UnsafeBufferPointer<Float> { try f.floats(n, shape: s) }
        func linear(_ p: String, _ o: Int, _ i: Int) throws -> Linear { Linear(try w("\(p).weight", [o, i]), try w("\(p).bias", [o]), outputs: o, inputs: i) }
        func norm(_ p: String) throws -> Norm {
            Norm(weight: Array(try w("\(p).weight", [d])), bias: c.isRMSNorm ? nil : Array(try w("\(p).bias", [d])))
        }
        tokenEmbeddings = try (0..<c.channels).map { Array(try w("tok_emb.\($0).weight", [c.codes + 1, d])) }
        classEmbeddings = Array(try w("cls_emb.weight", [c.classes + 1, d]))
        positionEmbeddings = Array(try w("pos_emb", [c.positions + 1, d]))
        embeddingNorm = c.isPostNorm ? try norm("emb_ln") : nil
        finalNorm = c.isPostNorm ? nil : try norm("final_ln")
        layers = try (0..<c.layers).map { l in
            let p = "layers.\(l)"
            return Layer(qkv: try linear("\(p).attn.qkv", 3 * d, d), out: try linear("\(p).attn.out", d, d),
                         fc1: try linear("\(p).mlp.fc1", c.isGEGLU ? 2 * c.mlp : c.mlp, d), fc2: try linear("\(p).mlp.fc2", d, c.mlp),
                         ln1: try norm("\(p).ln1"), ln2: try norm("\(p).ln2"))
        }
        headDense = try linear("head.dense", d, d)
        headNorm = try norm("head.ln")
        heads = try (0..<c.channels).map { ch in
            let emb = try w("tok_emb.\(ch).weight", [c.codes + 1, d])
            return Linear(UnsafeBufferPointer(rebasing: emb[0..<(c.codes * d)]), try w("head_bias.\(ch)", [c.codes]), outputs: c.codes, inputs: d)
        }
    }

    /// Logits `[B][N][c][K]` (flattened) for token maps `tokens` (`[B][N][c]`
    /// flattened, ids `0...K`, `K` = MASK) and `classes` (`[B]`, `0...classes`,
    /// the last being unconditional).
    public func logits(tokens: [Int32], classes: [Int], threads: Int = 1) throws -> [Float] {
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
        lock.lock(); defer { lock.unlock() }
        let rt = FastRuntime(kernels: kernels, parallelism: Parallelism(threads: threads), profiler: profiler, workspace: workspace)
        workspace.begin(shape: [-2, b, threads])
        defer { workspace.end() }
        return forward(tokens, classes, rt)
    }

    private func forward(_ tokens: [Int32], _ classes: [Int], _ rt: FastRuntime) -> [Float] {
        let c = config, d = c.hidden, s = c.positions + 1, b = classes.count, p = b * s
        let chunk = kernels.chunk, np = (p + chunk - 1) / chunk * chunk + 2 * chunk
        let ws = workspace
        let mlpRows = c.isGEGLU ? 2 * c.mlp : c.mlp
        var x = ws.take(d * np), y = ws.take(d * np)
        let qkv = ws.take(3 * d * np), a = ws.take(d * np), h = ws.take(max(mlpRows, c.codes) * np)
        defer { for buf in [x, y, qkv, a, h] { ws.give(buf) } }
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
        func norm(_ nm: Norm, _ src: UnsafeMutableBufferPointer<Float>, _ dst: UnsafeMutableBufferPointer<Float>) {
            rt.timed("norm \(d)") {
                nm.weight.withUnsafeBufferPointer { w in
                    if let bias = nm.bias {
                        bias.withUnsafeBufferPointer { columnNorm(src, dst, w.baseAddress!, $0.baseAddress!) }
                    } else {
                        columnNorm(src, dst, w.baseAddress!, nil)
                    }
                }
            }
        }
        func columnNorm(_ src: UnsafeMutableBufferPointer<Float>, _ dst: UnsafeMutableBufferPointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?) {
            let args = ColumnNormArgs(input: src.baseAddress!, output: dst.baseAddress!, planeStride: np, channels: d,
                                      weight: w, bias: bias, eps: c.normEps, rms: c.isRMSNorm)
            let vectors = (p + kernels.lanes - 1) / kernels.lanes, lanes = kernels.lanes, run = kernels.columnNorm
            rt.parallelism.forEachRange(vectors, minimumChunk: 4) { r in run(args, (r.lowerBound * lanes)..<(r.upperBound * lanes)) }
        }
        func linear(_ l: Linear, _ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>? = nil) {
            rt.timed("linear \(l.inputs)->\(l.outputs)", flops: 2 * Double(l.inputs * l.outputs * p)) {
                l.weights.withUnsafeBufferPointer { wp in l.bias.withUnsafeBufferPointer { bp in
                    rt.gemm(PlanarConvArgs(input: src, inputPlaneStride: np, rowStride: 0, kernel: 1, tapOrigin: 0,
                                           weights: wp.baseAddress!, bias: bp.baseAddress!, inChannels: l.inputs, outChannels: l.outputs,
                                           output: dst, outputPlaneStride: np, outputShift: 0,
                                           residual: residual.map { UnsafePointer($0) }, positions: p))
                } }
            }
        }
        func gelu(_ buf: UnsafeMutablePointer<Float>, rows: Int, gate: UnsafeMutablePointer<Float>? = nil) {
            rt.timed("gelu") {
                let count = rows * np, step = 4096, run = kernels.gelu, glu = kernels.geglu
                let bb = UnsafeSendableBox(buf), gb = gate.map { UnsafeSendableBox($0) }
                rt.parallelism.forEachRange((count + step - 1) / step) { r in
                    for blk in r {
                        let lo = blk * step, m = min(step, count - lo)
                        if let g = gb { glu(bb.value + lo, g.value + lo, m) } else { run(bb.value + lo, m) }
                    }
                }
            }
        }

        if let e = embeddingNorm { norm(e, x, x) }
        let headCount = c.heads, dh = d / headCount, scale = 1 / Float(dh).squareRoot()
        for layer in layers {
            // Attention.
            var src = x
            if !c.isPostNorm { norm(layer.ln1, x, y); src = y }
            linear(layer.qkv, src.baseAddress!, qkv.baseAddress!)
            rt.timed("attention \(headCount) heads x \(s)", flops: 4 * Double(s * s * d * b)) {
                for i in 0..<b {
                    for hd in 0..<headCount {
                        let base = qkv.baseAddress! + hd * dh * np + i * s
                        PlanarAttention.attend(q: base, k: base + d * np, v: base + 2 * d * np, out: a.baseAddress! + hd * dh * np + i * s,
                                               channels: dh, positions: s, planeStride: np, scale: scale, rt, ws)
                    }
                }
            }
            linear(layer.out, a.baseAddress!, y.baseAddress!, residual: x.baseAddress!)
            if c.isPostNorm { norm(layer.ln1, y, x) } else { swap(&x, &y) }
            // MLP.
            src = x
            if !c.isPostNorm { norm(layer.ln2, x, y); src = y }
            linear(layer.fc1, src.baseAddress!, h.baseAddress!)
            // GEGLU: value rows 0..<mlp times gelu(gate rows mlp..<2 mlp).
            gelu(h.baseAddress!, rows: c.mlp, gate: c.isGEGLU ? h.baseAddress! + c.mlp * np : nil)
            linear(layer.fc2, h.baseAddress!, y.baseAddress!, residual: x.baseAddress!)
            if c.isPostNorm { norm(layer.ln2, y, x) } else { swap(&x, &y) }
        }
        if let f = finalNorm { norm(f, x, x) }

        // Head: logits[ch] = E_ch h' + bias_ch with h' = LN(gelu(dense(h))).
        linear(headDense, x.baseAddress!, y.baseAddress!)
        gelu(y.baseAddress!, rows: d)
        norm(headNorm, y, y)
        var out = [Float](repeating: 0, count: b * c.positions * c.channels * c.codes)
        for (ch, head) in heads.enumerated() {
            linear(head, y.baseAddress!, h.baseAddress!)
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
