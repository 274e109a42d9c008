import MoVQKernelCore

/// Scaled dot-product attention on `[channels][positions]` buffers, the one
/// attention every model uses (the decoder's spatial attention, the MaskGIT
/// transformer's heads, the autoregressive prior's cached keys):
/// `out[:, i] = sum_j softmax_j(scale * q[:, i] . k[:, j]) v[:, j]`, every
/// product on the planar GEMM kernel, queries in blocks of `queryBlock` so
/// at most `queryBlock x keys` scores exist at once. Buffers need a GEMM
/// chunk of slack past their last position; writes to `out` may run up to a
/// chunk past the last query (callers that pack several sequences in one
/// buffer attend them in increasing order).
enum Attention {
    static let queryBlock = 256

    /// Floats rounded up to a 64-byte multiple (scratch sub-buffers stay aligned).
    static func aligned(_ floats: Int) -> Int { (floats + 15) / 16 * 16 }

    /// Floats of a `[ceil(O/6)][I][1][6]` packed matrix.
    static func packedFloats(outputs o: Int, inputs i: Int) -> Int { (o + 5) / 6 * 6 * i }

    /// Rows of the score block (a query block plus GEMM slack).
    static func scoreStride(chunk: Int) -> Int { (queryBlock + chunk - 1) / chunk * chunk + 2 * chunk }

    /// Scratch floats `attend` needs for `channels` and `keys`.
    static func scratchFloats(channels c: Int, keys n: Int, chunk: Int) -> Int {
        aligned(packedFloats(outputs: n, inputs: c)) + aligned(packedFloats(outputs: c, inputs: n)) + aligned(max(c, n) + 6)
            + aligned(n * scoreStride(chunk: chunk))
    }

    /// Attends `queries` columns of `q` (planes `queryStride` apart) over
    /// `keys` columns of `k` and `v` (planes `keyStride` apart) into `out`
    /// (planes `outStride` apart). `scratch` holds `scratchFloats` floats.
    static func attend(q: UnsafePointer<Float>, queries m: Int, queryStride: Int,
                       k: UnsafePointer<Float>, v: UnsafePointer<Float>, keys n: Int, keyStride: Int,
                       out: UnsafeMutablePointer<Float>, outStride: Int, channels c: Int, scale: Float,
                       scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let lanes = ctx.kernels.lanes, bp = scoreStride(chunk: ctx.kernels.chunk)
        // Scores are computed key-major, S^T[j][i] = sum_c K[c][j] Q[c][i]: the
        // softmax then runs down planes with queries along the vectors, and
        // S^T is directly the input of O = V P^T (no transpose).
        let kT = scratch, vPacked = kT + aligned(packedFloats(outputs: n, inputs: c))
        let zeroBias = vPacked + aligned(packedFloats(outputs: c, inputs: n)), scores = zeroBias + aligned(max(c, n) + 6)
        pack(k, into: kT, outputs: n, inputs: c, outStride: 1, inStride: keyStride)
        pack(v, into: vPacked, outputs: c, inputs: n, outStride: keyStride, inStride: 1)
        zeroBias.update(repeating: 0, count: max(c, n) + 6)
        var i0 = 0
        while i0 < m {
            let rows = min(queryBlock, m - i0)
            ctx.gemm(PlanarConvArgs(input: q + i0, inputPlaneStride: queryStride, rowStride: 0, kernel: 1, tapOrigin: 0,
                                    weights: kT, bias: zeroBias, inChannels: c, outChannels: n,
                                    output: scores, outputPlaneStride: bp, outputShift: 0, residual: nil, positions: rows))
            let softmax = ctx.kernels.columnSoftmax, sb = UnsafeSendableBox(scores)
            let vectors = (rows + lanes - 1) / lanes
            ctx.parallelism.forEachRange(vectors) { r in softmax(sb.value, bp, n, (r.lowerBound * lanes)..<(r.upperBound * lanes), scale) }
            ctx.gemm(PlanarConvArgs(input: scores, inputPlaneStride: bp, rowStride: 0, kernel: 1, tapOrigin: 0,
                                    weights: vPacked, bias: zeroBias, inChannels: n, outChannels: c,
                                    output: out, outputPlaneStride: outStride, outputShift: i0, residual: nil, positions: rows))
            i0 += rows
        }
    }

    /// One query column over `keys` cached key/value columns (an
    /// autoregressive step): the same function as `attend` with one query,
    /// run along the keys without packing. `scores` holds `keys` rounded up
    /// to a vector.
    static func attendOne(q: UnsafePointer<Float>, queryStride: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, keys n: Int,
                          keyStride: Int, out: UnsafeMutablePointer<Float>, outStride: Int, channels c: Int, scale: Float,
                          scores: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        ctx.kernels.attendOne(AttendOneArgs(query: q, queryStride: queryStride, keys: k, values: v, keyStride: keyStride, count: n,
                                            channels: c, scale: scale, output: out, outputStride: outStride, scores: scores))
    }

    /// Packs a weight matrix given by strides (`w[o][i] = src[o * outStride + i * inStride]`)
    /// into `PlanarConv`'s `[ceil(O/6)][I][1][6]` layout (zero rows past `outputs`).
    static func pack(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, outputs o: Int, inputs i: Int, outStride: Int, inStride: Int) {
        dst.update(repeating: 0, count: packedFloats(outputs: o, inputs: i))
        for oc in 0..<o {
            let g = oc / 6, r = oc % 6
            for ic in 0..<i { dst[(g * i + ic) * 6 + r] = src[oc * outStride + ic * inStride] }
        }
    }
}
