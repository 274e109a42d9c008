import MoVQKernelCore

/// Single-head spatial self-attention on a padded planar map, with every
/// product done by the planar GEMM kernel and queries processed in blocks, so
/// the score matrix held at once is `queryBlock x tokens`, never `tokens^2`.
struct FastAttention: @unchecked Sendable {
    let norm: FastNorm
    let q: FastConv, k: FastConv, v: FastConv, out: FastConv
    let channels: Int
    static let queryBlock = PlanarAttention.queryBlock

    init(_ block: AttentionBlock, channels c: Int) {
        norm = FastNorm(layer: block.norm)
        channels = c
        func lin(_ w: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> FastConv {
            FastConv(Conv2DLayer(weight: w, bias: b, geometry: Conv2DGeometry(inChannels: c, outChannels: c, kernel: 1)))
        }
        let w = block.weights
        q = lin(w.q, w.qBias); k = lin(w.k, w.kBias); v = lin(w.v, w.vBias); out = lin(w.out, w.outBias)
    }

    /// `y = x + proj(attention(norm(x)))`, written into `y`.
    func callAsFunction(_ x: PlanarMap, into y: PlanarMap, zq: Tensor?, _ rt: FastRuntime, _ ws: Workspace) {
        let n = Double(x.height * x.width), c = Double(channels)
        rt.timed("attention \(channels) @\(x.height)x\(x.width) (incl. norm)", flops: 8 * c * c * n + 4 * n * n * c) {
            run(x, into: y, zq: zq, rt, ws)
        }
    }

    private func run(_ x: PlanarMap, into y: PlanarMap, zq: Tensor?, _ rt: FastRuntime, _ ws: Workspace) {
        let c = channels, n = x.height * x.width, chunk = rt.kernels.chunk
        let np = (n + chunk - 1) / chunk * chunk + 2 * chunk  // plain plane stride with overrun slack
        let normed = PlanarMap(ws, channels: c, height: x.height, width: x.width)
        defer { ws.give(normed.buffer) }
        norm(x, into: normed, zq: zq, silu: false, rt)
        let plain = ws.take(c * np), qb = ws.take(c * np), kb = ws.take(c * np), vb = ws.take(c * np), ob = ws.take(c * np)
        defer { for b in [plain, qb, kb, vb, ob] { ws.give(b) } }
        // Interior -> plain [C][N].
        for ch in 0..<c {
            for yy in 0..<x.height {
                (plain.baseAddress! + ch * np + yy * x.width).update(from: normed.plane(ch) + (yy + 1) * x.rowStride + 1, count: x.width)
            }
        }
        func project(_ f: FastConv, _ src: UnsafeMutableBufferPointer<Float>, _ dst: UnsafeMutableBufferPointer<Float>) {
            f.weights.withUnsafeBufferPointer { w in f.bias.withUnsafeBufferPointer { b in
                rt.gemm(PlanarConvArgs(input: src.baseAddress!, inputPlaneStride: np, rowStride: 0, kernel: 1, tapOrigin: 0,
                                       weights: w.baseAddress!, bias: b.baseAddress!, inChannels: c, outChannels: c,
                                       output: dst.baseAddress!, outputPlaneStride: np, outputShift: 0, residual: nil, positions: n))
            } }
        }
        project(q, plain, qb); project(k, plain, kb); project(v, plain, vb)
        PlanarAttention.attend(q: qb.baseAddress!, k: kb.baseAddress!, v: vb.baseAddress!, out: ob.baseAddress!,
                               channels: c, positions: n, planeStride: np, scale: 1 / Float(c).squareRoot(), rt, ws)
        project(out, ob, plain)
        // y = x + projection, interior only (borders stay zero).
        let xb = UnsafeSendableBox(x), yb = UnsafeSendableBox(y), pl = UnsafeSendableBox(plain.baseAddress!)
        rt.parallelism.forEachRange(c, minimumChunk: 8) { r in
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

/// Scaled dot-product attention on planar `[channels][positions]` buffers:
/// `out[:, i] = sum_j softmax_j(scale * q[:, i] . k[:, j]) v[:, j]`, every
/// product on the planar GEMM kernel, queries in blocks of `queryBlock` so
/// at most `queryBlock x positions` scores exist at once. Planes are
/// `planeStride` apart and need a GEMM chunk of slack past `positions`
/// (writes to `out` may run up to a chunk past it: callers that pack
/// several sequences in one buffer attend them in increasing order).
enum PlanarAttention {
    static let queryBlock = 256

    static func attend(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                       channels c: Int, positions n: Int, planeStride np: Int, scale: Float, _ rt: FastRuntime, _ ws: Workspace) {
        let chunk = rt.kernels.chunk, lanes = rt.kernels.lanes
        // Scores are computed key-major, S^T[j][i] = sum_c K[c][j] Q[c][i]: the
        // softmax then runs down planes with queries along the vectors, and
        // S^T is directly the input of O = V P^T (no transpose).
        let kT = packStrided(k, outChannels: n, inChannels: c, outStride: 1, inStride: np)
        let vPacked = packStrided(v, outChannels: c, inChannels: n, outStride: np, inStride: 1)
        let zeroBias = [Float](repeating: 0, count: max(c, n) + 6)
        let bq = queryBlock
        let bp = (bq + chunk - 1) / chunk * chunk + 2 * chunk
        let scores = ws.take(n * bp)
        defer { ws.give(scores) }
        var i0 = 0
        while i0 < n {
            let rows = min(bq, n - i0)
            kT.withUnsafeBufferPointer { w in zeroBias.withUnsafeBufferPointer { z in
                rt.gemm(PlanarConvArgs(input: q + i0, inputPlaneStride: np, rowStride: 0, kernel: 1, tapOrigin: 0,
                                       weights: w.baseAddress!, bias: z.baseAddress!, inChannels: c, outChannels: n,
                                       output: scores.baseAddress!, outputPlaneStride: bp, outputShift: 0, residual: nil, positions: rows))
            } }
            let softmax = rt.kernels.columnSoftmax, sb = UnsafeSendableBox(scores.baseAddress!)
            let vectors = (rows + lanes - 1) / lanes
            rt.parallelism.forEachRange(vectors) { r in softmax(sb.value, bp, n, (r.lowerBound * lanes)..<(r.upperBound * lanes), scale) }
            vPacked.withUnsafeBufferPointer { w in zeroBias.withUnsafeBufferPointer { z in
                rt.gemm(PlanarConvArgs(input: scores.baseAddress!, inputPlaneStride: bp, rowStride: 0, kernel: 1, tapOrigin: 0,
                                       weights: w.baseAddress!, bias: z.baseAddress!, inChannels: n, outChannels: c,
                                       output: out, outputPlaneStride: np, outputShift: i0, residual: nil, positions: rows))
            } }
            i0 += rows
        }
    }
}

/// Packs a weight matrix given by strides (`w[o][i] = src[o * outStride + i * inStride]`)
/// into `PlanarConv`'s `[ceil(O/6)][I][1][6]` layout.
func packStrided(_ src: UnsafePointer<Float>, outChannels o: Int, inChannels i: Int, outStride: Int, inStride: Int) -> [Float] {
    let groups = (o + 5) / 6
    var out = [Float](repeating: 0, count: groups * i * 6)
    out.withUnsafeMutableBufferPointer { p in
        for oc in 0..<o {
            let g = oc / 6, r = oc % 6
            for ic in 0..<i { p[(g * i + ic) * 6 + r] = src[oc * outStride + ic * inStride] }
        }
    }
    return out
}
