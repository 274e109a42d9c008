import MoVQKernelCore

/// A linear layer packed for the planar GEMM (`y = W x + b` on `[features][positions]`).
struct PriorLinear {
    let weights: [Float], bias: [Float], inputs: Int, outputs: Int

    init(_ w: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>, outputs o: Int, inputs i: Int) {
        weights = PlanarConvWeights.pack(w, outChannels: o, inChannels: i, kernel: 1)
        bias = PlanarConvWeights.packBias(b, outChannels: o); inputs = i; outputs = o
    }

    /// `<prefix>.weight [o, i]` and `<prefix>.bias [o]` from a packed file.
    init(_ f: PackedFile, _ prefix: String, outputs o: Int, inputs i: Int) throws {
        self.init(try f.floats("\(prefix).weight", shape: [o, i]), try f.floats("\(prefix).bias", shape: [o]), outputs: o, inputs: i)
    }
}

/// LayerNorm (weight, bias) or RMSNorm (weight) over the features of each position.
struct PriorNorm {
    let weight: [Float], bias: [Float]?

    init(_ f: PackedFile, _ prefix: String, _ c: PriorConfig) throws {
        weight = Array(try f.floats("\(prefix).weight", shape: [c.hidden]))
        bias = c.isRMSNorm ? nil : Array(try f.floats("\(prefix).bias", shape: [c.hidden]))
    }
}

/// One transformer layer's weights.
struct PriorLayer {
    let qkv: PriorLinear, out: PriorLinear, fc1: PriorLinear, fc2: PriorLinear, ln1: PriorNorm, ln2: PriorNorm

    init(_ f: PackedFile, _ p: String, _ c: PriorConfig) throws {
        let d = c.hidden
        qkv = try PriorLinear(f, "\(p).attn.qkv", outputs: 3 * d, inputs: d)
        out = try PriorLinear(f, "\(p).attn.out", outputs: d, inputs: d)
        fc1 = try PriorLinear(f, "\(p).mlp.fc1", outputs: c.isGEGLU ? 2 * c.mlp : c.mlp, inputs: d)
        fc2 = try PriorLinear(f, "\(p).mlp.fc2", outputs: d, inputs: c.mlp)
        ln1 = try PriorNorm(f, "\(p).ln1", c); ln2 = try PriorNorm(f, "\(p).ln2", c)
    }
}

/// The transformer's planar operators on `[features][positions]` buffers
/// whose planes are `planeStride` apart (with a GEMM chunk of slack).
struct PlanarOps {
    let rt: FastRuntime, planeStride: Int, positions: Int, config: PriorConfig

    /// `dst = W src + b (+ residual)`; `dst` must not alias `src` or `residual`.
    func linear(_ l: PriorLinear, _ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>? = nil) {
        let np = planeStride, p = positions
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
