import MoVQIO
import MoVQKernelCore

/// A linear layer packed for the planar GEMM (`y = W x + b` on
/// `[features][positions]` buffers). With int8-stored weights it quantizes
/// each column's inputs to 8 bits (`|x'| <= 127`, dynamic, no calibration)
/// and sums exactly in int32: u8 x s8 quads (`QuadGemm`) on VNNI tiers, the
/// same integers as int16 pairs (`PairGemm`) elsewhere, so every tier
/// computes the same outputs.
struct LinearOperator: @unchecked Sendable {
    let weights: WeightPanel, bias: [Float], inputs: Int, outputs: Int
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

    /// Packs `w` (`[outputs, inputs]`, as the file stores it: int8 weights
    /// run in an integer mode, `planar6` weights are read in place). `quads`: use the u8 x s8 mode for int8
    /// weights (the tier has `quadLinear`).
    init(_ w: StoredWeights, _ b: UnsafeBufferPointer<Float>, outputs o: Int, inputs i: Int, quads: Bool = false) {
        bias = PlanarConvWeights.packBias(b, outChannels: o); inputs = i; outputs = o
        if let (stored, s) = w.quantized, ConvOperator.int16Enabled {
            let q = stored.map { Int32($0) }
            var scales = [Float](repeating: 0, count: (o + 5) / 6 * 6)
            for r in 0..<o { scales[r] = s[r] }
            if quads && Self.quadsEnabled {
                let (words, offsets) = QuadGemmWeights.pack(q, outputs: o, inputs: i)
                integer = IntegerWeights(words: words, scales: scales, limit: 127, offsets: offsets)
            } else {
                integer = IntegerWeights(words: PairGemmWeights.pack(q, outputs: o, inputs: i), scales: scales, limit: 127, offsets: nil)
            }
            weights = .empty
        } else {
            weights = WeightPanel(w) { PlanarConvWeights.pack($0, outChannels: o, inChannels: i, kernel: 1) }
            integer = nil
        }
    }

    /// Off (`RuntimeOptions.quadLinears`) keeps int8 linears in int16 mode on VNNI tiers (A/B runs).
    static let quadsEnabled = RuntimeOptions.current.quadLinears

    var residentBytes: Int { weights.residentBytes + (bias.count + (integer.map { $0.words.count + $0.scales.count + ($0.offsets?.count ?? 0) } ?? 0)) * 4 }

    /// Scratch floats for `planeStride`-apart planes (integer mode: packed input words and per-column scales).
    func scratchFloats(planeStride np: Int) -> Int {
        guard let q = integer else { return 0 }
        return ((inputs + q.channelsPerWord - 1) / q.channelsPerWord + 2) * np
    }

    /// `dst = W src + b (+ residual)` over `positions` columns; `dst` must not alias `src` or `residual`.
    /// Planes of `src` are `planeStride` apart, those of `dst` and `residual` `outputPlaneStride` (default: the same).
    func callAsFunction(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?,
                        planeStride np: Int, outputPlaneStride: Int? = nil, positions p: Int, scratch: UnsafeMutablePointer<Float>?,
                        _ ctx: ExecutionContext) {
        let op = outputPlaneStride ?? np
        if let q = integer, let run = q.quads ? ctx.kernels.quadLinear : ctx.kernels.pairLinear {
            ctx.timed("linear-\(q.quads ? "u8s8" : "8bit") \(inputs)->\(outputs)", flops: 2 * Double(inputs * outputs * p)) {
                let chunk = ctx.kernels.chunk, chunks = (p + chunk - 1) / chunk
                let wordPlanes = (inputs + q.channelsPerWord - 1) / q.channelsPerWord
                let words = UnsafeMutableRawPointer(scratch!).bindMemory(to: Int32.self, capacity: wordPlanes * np)
                let scales = scratch! + wordPlanes * np
                q.words.withUnsafeBufferPointer { wp in q.scales.withUnsafeBufferPointer { sp in bias.withUnsafeBufferPointer { bp in
                    (q.offsets ?? []).withUnsafeBufferPointer { offsets in
                        var args = PairLinearArgs(input: src, planeStride: np, inputs: inputs, outputs: outputs, weights: wp.baseAddress!,
                                                  rowScales: sp.baseAddress!, limit: q.limit, bias: bp.baseAddress!,
                                                  residual: residual, output: dst, words: words,
                                                  columnScales: scales, inverse: scales + np)
                        args.rowOffsets = q.quads ? offsets.baseAddress : nil
                        args.outputPlaneStride = op
                        ctx.parallelism.forEachRange(chunks) { r in run(args, (r.lowerBound * chunk)..<(r.upperBound * chunk)) }
                    }
                } } }
            }
            return
        }
        ctx.timed("linear \(inputs)->\(outputs)", flops: 2 * Double(inputs * outputs * p)) {
            weights.withUnsafeBufferPointer { wp in bias.withUnsafeBufferPointer { bp in
                ctx.gemm(PlanarConvArgs(input: src, inputPlaneStride: np, rowStride: 0, kernel: 1, tapOrigin: 0,
                                        weights: wp.baseAddress!, bias: bp.baseAddress!, inChannels: inputs, outChannels: outputs,
                                        output: dst, outputPlaneStride: op, outputShift: 0, residual: residual, positions: p))
            } }
        }
    }
}

/// LayerNorm (weight, bias) or RMSNorm (weight) over the features of each position.
struct LayerNormOperator: @unchecked Sendable {
    let weight: [Float], bias: [Float]?
    let eps: Float, rms: Bool

    /// `dst = norm(src)` per column (`dst` may be `src`).
    func callAsFunction(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, planeStride: Int, positions: Int, _ ctx: ExecutionContext) {
        let k = ctx.kernels, lanes = k.lanes, run = k.columnNorm
        ctx.timed("norm \(weight.count)") {
            weight.withUnsafeBufferPointer { w in
                func go(_ b: UnsafePointer<Float>?) {
                    let args = ColumnNormArgs(input: src, output: dst, planeStride: planeStride, channels: weight.count,
                                              weight: w.baseAddress!, bias: b, eps: eps, rms: rms)
                    ctx.parallelism.forEachRange((positions + lanes - 1) / lanes, minimumChunk: 4) { r in
                        run(args, (r.lowerBound * lanes)..<(r.upperBound * lanes))
                    }
                }
                if let b = bias { b.withUnsafeBufferPointer { go($0.baseAddress!) } } else { go(nil) }
            }
        }
    }
}

/// In place over `rows` planes `planeStride` apart: `gelu(x)`, or with `gate` (GEGLU) `x * gelu(gate)`.
func geluInPlace(_ buf: UnsafeMutablePointer<Float>, rows: Int, planeStride: Int, gate: UnsafeMutablePointer<Float>?, _ ctx: ExecutionContext) {
    ctx.timed("gelu") {
        let count = rows * planeStride, step = 4096, run = ctx.kernels.gelu, glu = ctx.kernels.geglu
        let bb = UnsafeSendableBox(buf), gb = gate.map { UnsafeSendableBox($0) }
        ctx.parallelism.forEachRange((count + step - 1) / step) { r in
            for blk in r {
                let lo = blk * step, m = min(step, count - lo)
                if let g = gb { glu(bb.value + lo, g.value + lo, m) } else { run(bb.value + lo, m) }
            }
        }
    }
}
