import MoVQKernelCore

/// Single-head spatial self-attention of a normalized feature map with a
/// residual: the q, k, v and output projections are linear layers
/// (`LinearOperator`: fp32 planar GEMMs, or 8-bit integer GEMMs for int8
/// weights), the attention itself the shared `Attention`.
struct SpatialAttentionOperator: @unchecked Sendable {
    let q: LinearOperator, k: LinearOperator, v: LinearOperator, out: LinearOperator
    let channels: Int

    var residentBytes: Int { q.residentBytes + k.residentBytes + v.residentBytes + out.residentBytes }

    /// Plane stride of the plain `[C][N]` buffers (a GEMM chunk of overrun slack).
    static func plainStride(positions n: Int, chunk: Int) -> Int { (n + chunk - 1) / chunk * chunk + 2 * chunk }

    /// Positions per block of the projections: all of them while a `[C][block]`
    /// buffer stays under `RuntimeOptions.attentionBlock` bytes (8 MiB), else
    /// equal blocks of whole attention query blocks.
    func block(positions n: Int) -> Int {
        let limit = RuntimeOptions.current.attentionBlock
        let blocks = max(1, (channels * n * 4 + limit - 1) / limit)
        guard blocks > 1 else { return n }
        let q = Attention.queryBlock
        return ((n + blocks - 1) / blocks + q - 1) / q * q
    }

    /// Scratch floats for a `height x width` map: whole keys and values,
    /// three buffers of one block (input, queries, output), the attention's,
    /// and the projections' (integer mode: one block's input words).
    func scratchFloats(height: Int, width: Int, _ ctx: ExecutionContext) -> Int {
        let n = height * width, chunk = ctx.kernels.chunk
        let np = Self.plainStride(positions: n, chunk: chunk), bp = Self.plainStride(positions: block(positions: n), chunk: chunk)
        return 2 * Attention.aligned(channels * np) + 3 * Attention.aligned(channels * bp)
            + Attention.scratchFloats(channels: channels, keys: n, chunk: chunk) + projectionScratch(blockStride: bp)
    }

    /// Scratch floats of one projection call on a block (they run one after another).
    private func projectionScratch(blockStride bp: Int) -> Int {
        [q, k, v, out].map { $0.scratchFloats(planeStride: bp) }.max()!
    }

    /// `y = x + proj(attention(normed))`, written into `y`.
    func callAsFunction(_ normed: FeatureMap, residual x: FeatureMap, into y: FeatureMap, scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let n = Double(x.height * x.width), c = Double(channels)
        ctx.timed("attention \(channels) @\(x.height)x\(x.width)", flops: 8 * c * c * n + 4 * n * n * c) {
            run(normed, residual: x, into: y, scratch: scratch, ctx)
        }
    }

    /// Keys and values are projected block by block into whole buffers; then
    /// each block of queries is projected, attended (a query's result does
    /// not depend on which others share its call) and projected out into `y`.
    /// Only keys and values are ever whole, so a large map's attention needs
    /// two `[C][N]` buffers (plus the attention's packed copies), not five.
    private func run(_ normed: FeatureMap, residual x: FeatureMap, into y: FeatureMap, scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let c = channels, n = x.height * x.width, w = x.width, chunk = ctx.kernels.chunk
        let np = Self.plainStride(positions: n, chunk: chunk), size = Attention.aligned(c * np)
        let b = block(positions: n), bp = Self.plainStride(positions: b, chunk: chunk), blockSize = Attention.aligned(c * bp)
        let kb = scratch, vb = kb + size, input = vb + size, qb = input + blockSize, ob = qb + blockSize, rest = ob + blockSize
        let projection = rest + Attention.scratchFloats(channels: c, keys: n, chunk: chunk)
        /// Interior positions `ps` (row-major) of `normed` -> `input` `[C][ps.count]`.
        func gather(_ ps: Range<Int>) {
            let box = UnsafeSendableBox(input)
            ctx.parallelism.forEachRange(c, minimumChunk: 8) { r in
                for ch in r {
                    var p = ps.lowerBound
                    while p < ps.upperBound {
                        let yy = p / w, xx = p % w, count = min(ps.upperBound - p, w - xx)
                        (box.value + ch * bp + p - ps.lowerBound).update(from: normed.plane(ch) + (yy + 1) * normed.rowStride + 1 + xx, count: count)
                        p += count
                    }
                }
            }
        }
        var untimed = ctx
        untimed.profiler = nil  // the projections count as part of the attention's entry
        func project(_ f: LinearOperator, _ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, dstStride: Int, positions: Int) {
            f(src, dst, residual: nil, planeStride: bp, outputPlaneStride: dstStride, positions: positions, scratch: projection, untimed)
        }
        // In increasing order: a projection's writes may run a chunk past its block, into the next one.
        for p0 in stride(from: 0, to: n, by: b) {
            let ps = p0..<min(n, p0 + b)
            gather(ps)
            project(k, input, kb + p0, dstStride: np, positions: ps.count)
            project(v, input, vb + p0, dstStride: np, positions: ps.count)
        }
        for p0 in stride(from: 0, to: n, by: b) {
            let ps = p0..<min(n, p0 + b)
            gather(ps)
            project(q, input, qb, dstStride: bp, positions: ps.count)
            Attention.attend(q: qb, queries: ps.count, queryStride: bp, k: kb, v: vb, keys: n, keyStride: np, out: ob, outStride: bp,
                             channels: c, scale: 1 / Float(c).squareRoot(), scratch: rest, ctx)
            project(out, ob, input, dstStride: bp, positions: ps.count)
            // y = x + projection, interior only (borders stay zero).
            let xb = UnsafeSendableBox(x), yb = UnsafeSendableBox(y), pl = UnsafeSendableBox(input)
            ctx.parallelism.forEachRange(c, minimumChunk: 8) { r in
                for ch in r {
                    let xs = xb.value.plane(ch), ys = yb.value.plane(ch), src = pl.value + ch * bp
                    for p in ps {
                        let o = (p / w + 1) * x.rowStride + 1 + p % w
                        ys[o] = xs[o] + src[p - ps.lowerBound]
                    }
                }
            }
        }
    }
}
