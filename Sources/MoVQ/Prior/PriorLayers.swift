import Foundation
import MoVQKernelCore

/// A linear layer packed for the planar GEMM (`y = W x + b` on `[features][positions]`).
/// With int8-stored weights it runs as an int16 `PairGemm` (per-column
/// dynamic input quantization, exact int32 sums).
struct PriorLinear {
    let weights: [Float], bias: [Float], inputs: Int, outputs: Int
    /// Integer mode for int8-stored weights (nil: fp32 `weights`).
    let integer: IntegerWeights?

    /// Packed int8 weights of a linear layer: int16 pairs (`PairGemm`), or
    /// u8 x s8 quads (`QuadGemm`, VNNI tiers) with zero-point `offsets`.
    struct IntegerWeights {
        let words: [Int32], scales: [Float], limit: Float
        let offsets: [Int32]?
        var quads: Bool { offsets != nil }
        /// Input channels per packed word.
        var channelsPerWord: Int { quads ? 4 : 2 }
    }

    /// `quads`: use the u8 x s8 mode for int8 weights (the tier has `quadLinear`).
    init(_ w: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, outputs o: Int, inputs i: Int,
         int8Scales: UnsafeBufferPointer<Float>? = nil, quads: Bool = false) {
        bias = PlanarConvWeights.packBias(b, outChannels: o); inputs = i; outputs = o
        if let s = int8Scales, ConvOperator.int16Enabled {
            let q = Int8Weights.recover(w, scales: s).map { Int32($0) }
            var scales = [Float](repeating: 0, count: (o + 5) / 6 * 6)
            for r in 0..<o { scales[r] = s[r] }
            if quads && Self.quadsEnabled {
                let (words, offsets) = QuadGemmWeights.pack(q, outputs: o, inputs: i)
                integer = IntegerWeights(words: words, scales: scales, limit: 127, offsets: offsets)
            } else {
                integer = IntegerWeights(words: PairGemmWeights.pack(q, outputs: o, inputs: i), scales: scales,
                                         limit: PairGemmWeights.limit(inputs: i, maxWeight: Int(q.map { abs($0) }.max() ?? 0)), offsets: nil)
            }
            weights = []
        } else {
            weights = PlanarConvWeights.pack(w, outChannels: o, inChannels: i, kernel: 1)
            integer = nil
        }
    }

    /// Off (`RuntimeOptions.quadLinears`) keeps int8 linears in int16 mode on VNNI tiers (A/B runs).
    static let quadsEnabled = RuntimeOptions.current.quadLinears

    /// `<prefix>.weight [o, i]` and `<prefix>.bias [o]` from a packed file
    /// (int16 or quad mode when the weight is stored as int8).
    init(_ f: PackedFile, _ prefix: String, outputs o: Int, inputs i: Int, quads: Bool = false) throws {
        self = try f.withFloats("\(prefix).weight", shape: [o, i]) { w in
            try f.withFloats("\(prefix).bias", shape: [o]) { b in
                PriorLinear(w, b, outputs: o, inputs: i, int8Scales: f.int8Scales(of: "\(prefix).weight"), quads: quads)
            }
        }
    }
}

/// LayerNorm (weight, bias) or RMSNorm (weight) over the features of each position.
struct PriorNorm {
    let weight: [Float], bias: [Float]?

    init(_ f: PackedFile, _ prefix: String, _ c: PriorConfig) throws {
        weight = try f.floatArray("\(prefix).weight", shape: [c.hidden])
        bias = c.isRMSNorm ? nil : try f.floatArray("\(prefix).bias", shape: [c.hidden])
    }
}

/// One transformer layer's weights.
struct PriorLayer {
    let qkv: PriorLinear, out: PriorLinear, fc1: PriorLinear, fc2: PriorLinear, ln1: PriorNorm, ln2: PriorNorm

    init(_ f: PackedFile, _ p: String, _ c: PriorConfig, quads: Bool = false) throws {
        let d = c.hidden
        qkv = try PriorLinear(f, "\(p).attn.qkv", outputs: 3 * d, inputs: d, quads: quads)
        out = try PriorLinear(f, "\(p).attn.out", outputs: d, inputs: d, quads: quads)
        fc1 = try PriorLinear(f, "\(p).mlp.fc1", outputs: c.isGEGLU ? 2 * c.mlp : c.mlp, inputs: d, quads: quads)
        fc2 = try PriorLinear(f, "\(p).mlp.fc2", outputs: d, inputs: c.mlp, quads: quads)
        ln1 = try PriorNorm(f, "\(p).ln1", c); ln2 = try PriorNorm(f, "\(p).ln2", c)
    }
}

/// The transformer's planar operators on `[features][positions]` buffers
/// whose planes are `planeStride` apart (with a GEMM chunk of slack).
struct PlanarOps {
    let rt: ExecutionContext, planeStride: Int, positions: Int, config: PriorConfig

    /// `dst = W src + b (+ residual)`; `dst` must not alias `src` or `residual`.
    func linear(_ l: PriorLinear, _ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>? = nil) {
        let np = planeStride, p = positions
        if let q = l.integer, let run = q.quads ? rt.kernels.quadLinear : rt.kernels.pairLinear {
            rt.timed("linear-\(q.quads ? "u8s8" : "int16") \(l.inputs)->\(l.outputs)", flops: 2 * Double(l.inputs * l.outputs * p)) {
                let chunk = rt.kernels.chunk, chunks = (p + chunk - 1) / chunk
                let wordPlanes = (l.inputs + q.channelsPerWord - 1) / q.channelsPerWord
                let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: (wordPlanes + 2) * np)
                defer { scratch.deallocate() }
                let words = UnsafeMutableRawPointer(scratch.baseAddress!).bindMemory(to: Int32.self, capacity: wordPlanes * np)
                let scales = scratch.baseAddress! + wordPlanes * np
                q.words.withUnsafeBufferPointer { wp in q.scales.withUnsafeBufferPointer { sp in l.bias.withUnsafeBufferPointer { bp in
                    (q.offsets ?? []).withUnsafeBufferPointer { op in
                        var args = PairLinearArgs(input: src, planeStride: np, inputs: l.inputs, outputs: l.outputs, weights: wp.baseAddress!,
                                                  rowScales: sp.baseAddress!, limit: q.limit, bias: bp.baseAddress!,
                                                  residual: residual.map { UnsafePointer($0) }, output: dst, words: words,
                                                  columnScales: scales, inverse: scales + np)
                        args.rowOffsets = q.quads ? op.baseAddress : nil
                        rt.parallelism.forEachRange(chunks) { r in run(args, (r.lowerBound * chunk)..<(r.upperBound * chunk)) }
                    }
                } } }
            }
            return
        }
        rt.timed("linear \(l.inputs)->\(l.outputs)", flops: 2 * Double(l.inputs * l.outputs * p)) {
            l.weights.withUnsafeBufferPointer { wp in l.bias.withUnsafeBufferPointer { bp in
                rt.gemm(PlanarConvArgs(input: src, inputPlaneStride: np, rowStride: 0, kernel: 1, tapOrigin: 0,
                                       weights: wp.baseAddress!, bias: bp.baseAddress!, inChannels: l.inputs, outChannels: l.outputs,
                                       output: dst, outputPlaneStride: np, outputShift: 0,
                                       residual: residual.map { UnsafePointer($0) }, positions: p))
            } }
        }
    }

    /// `dst = norm(src)` per position (`dst` may be `src`).
    func norm(_ nm: PriorNorm, _ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        let k = rt.kernels, lanes = k.lanes, run = k.columnNorm
        rt.timed("norm \(config.hidden)") {
            nm.weight.withUnsafeBufferPointer { w in
                func go(_ bias: UnsafePointer<Float>?) {
                    let args = ColumnNormArgs(input: src, output: dst, planeStride: planeStride, channels: config.hidden,
                                              weight: w.baseAddress!, bias: bias, eps: config.normEps, rms: config.isRMSNorm)
                    rt.parallelism.forEachRange((positions + lanes - 1) / lanes, minimumChunk: 4) { r in
                        run(args, (r.lowerBound * lanes)..<(r.upperBound * lanes))
                    }
                }
                if let b = nm.bias { b.withUnsafeBufferPointer { go($0.baseAddress!) } } else { go(nil) }
            }
        }
    }

    /// In place over `rows` planes: `gelu(x)`, or with `gate` (GEGLU) `x * gelu(gate)`.
    func gelu(_ buf: UnsafeMutablePointer<Float>, rows: Int, gate: UnsafeMutablePointer<Float>? = nil) {
        rt.timed("gelu") {
            let count = rows * planeStride, step = 4096, run = rt.kernels.gelu, glu = rt.kernels.geglu
            let bb = UnsafeSendableBox(buf), gb = gate.map { UnsafeSendableBox($0) }
            rt.parallelism.forEachRange((count + step - 1) / step) { r in
                for blk in r {
                    let lo = blk * step, m = min(step, count - lo)
                    if let g = gb { glu(bb.value + lo, g.value + lo, m) } else { run(bb.value + lo, m) }
                }
            }
        }
    }
}
