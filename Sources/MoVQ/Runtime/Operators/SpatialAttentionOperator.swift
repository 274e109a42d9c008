import MoVQKernelCore

/// Single-head spatial self-attention of a normalized feature map with a
/// residual: the q, k, v and output projections on the planar GEMM kernel,
/// the attention itself the shared `Attention`.
struct SpatialAttentionOperator: @unchecked Sendable {
    let q: ConvOperator, k: ConvOperator, v: ConvOperator, out: ConvOperator
    let channels: Int

    var residentBytes: Int { q.residentBytes + k.residentBytes + v.residentBytes + out.residentBytes }

    /// Plane stride of the plain `[C][N]` buffers (a GEMM chunk of overrun slack).
    static func plainStride(positions n: Int, chunk: Int) -> Int { (n + chunk - 1) / chunk * chunk + 2 * chunk }

    /// Scratch floats for a `height x width` map: five plain buffers and the attention's.
    func scratchFloats(height: Int, width: Int, _ ctx: ExecutionContext) -> Int {
        let n = height * width, np = Self.plainStride(positions: n, chunk: ctx.kernels.chunk)
        return 4 * Attention.aligned(channels * np) + Attention.scratchFloats(channels: channels, keys: n, chunk: ctx.kernels.chunk)
    }

    /// `y = x + proj(attention(normed))`, written into `y`.
    func callAsFunction(_ normed: FeatureMap, residual x: FeatureMap, into y: FeatureMap, scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let n = Double(x.height * x.width), c = Double(channels)
        ctx.timed("attention \(channels) @\(x.height)x\(x.width)", flops: 8 * c * c * n + 4 * n * n * c) {
            run(normed, residual: x, into: y, scratch: scratch, ctx)
        }
    }

    private func run(_ normed: FeatureMap, residual x: FeatureMap, into y: FeatureMap, scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let c = channels, n = x.height * x.width
        let np = Self.plainStride(positions: n, chunk: ctx.kernels.chunk), size = Attention.aligned(c * np)
        // Four `[C][N]` buffers: the normalized input, then the attention's output, in `plain`; q, then the projection, in `qb`.
        let plain = scratch, qb = plain + size, kb = qb + size, vb = kb + size
        // Interior -> plain [C][N].
        for ch in 0..<c {
            for yy in 0..<x.height {
                (plain + ch * np + yy * x.width).update(from: normed.plane(ch) + (yy + 1) * x.rowStride + 1, count: x.width)
            }
        }
        func project(_ f: ConvOperator, _ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
            f.weights.withUnsafeBufferPointer { w in f.bias.withUnsafeBufferPointer { b in
                ctx.gemm(PlanarConvArgs(input: src, inputPlaneStride: np, rowStride: 0, kernel: 1, tapOrigin: 0,
                                        weights: w.baseAddress!, bias: b.baseAddress!, inChannels: c, outChannels: c,
                                        output: dst, outputPlaneStride: np, outputShift: 0, residual: nil, positions: n))
            } }
        }
        project(q, plain, qb); project(k, plain, kb); project(v, plain, vb)
        Attention.attend(q: qb, queries: n, queryStride: np, k: kb, v: vb, keys: n, keyStride: np, out: plain, outStride: np,
                         channels: c, scale: 1 / Float(c).squareRoot(), scratch: vb + size, ctx)
        project(out, plain, qb)
        // y = x + projection, interior only (borders stay zero).
        let xb = UnsafeSendableBox(x), yb = UnsafeSendableBox(y), pl = UnsafeSendableBox(qb)
        ctx.parallelism.forEachRange(c, minimumChunk: 8) { r in
            for ch in r {
                let xs = xb.value.plane(ch), ys = yb.value.plane(ch), ps = pl.value + ch * np
                for yy in 0..<x.height {
                    let o = (yy + 1) * x.rowStride + 1
                    for xx in 0..<x.width { ys[o + xx] = xs[o + xx] + ps[yy * x.width + xx] }
                }
            }
        }
    }
}
