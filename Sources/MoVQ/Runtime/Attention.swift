import MoVQKernelCore

/// Scaled dot-product attention on `[channels][positions]` buffers, the one
/// attention every model uses (the decoder's spatial attention, the MaskGIT
/// transformer's heads, the autoregressive prior's cached keys):
/// `out[:, i] = sum_j softmax_j(scale * q[:, i] . k[:, j]) v[:, j]`.
///
/// Blocked ("flash") form: `queryBlock` queries at a time walk the keys in
/// blocks (`keyBlock(keys:)`: all keys while their scores fit
/// `maxScoreFloats`, so the usual sizes run in one block); per block the
/// scores (`keyBlock x queryBlock`) come from the planar GEMM kernel, an online softmax keeps each
/// query's running maximum and sum, the output so far is rescaled and the
/// block's `V P` is added by the same GEMM kernel; the output is divided by
/// the sums at the end. So scores never exceed `maxScoreFloats`, whatever
/// the sequence. The key block depends on the key count only and queries
/// run along the vector lanes, so each query is computed in the same order
/// on every tier and thread count. Buffers need a GEMM chunk of slack past
/// their last position; writes to `out` may run up to a chunk past the last
/// query (callers that pack several sequences in one buffer attend them in
/// increasing order).
enum Attention {
    /// Queries per block (a multiple of every tier's GEMM chunk).
    static let queryBlock = 256
    /// Most scores one block holds (1 MB: a 1024-key decoder attention still runs in one block).
    static let maxScoreFloats = 1 << 18

    /// Keys per block for `n` keys: all of them, or equal blocks (rounded
    /// up to whole pairs of 6-row GEMM groups) whose scores fit `maxScores`.
    static func keyBlock(keys n: Int, maxScores: Int = maxScoreFloats) -> Int {
        let blocks = max(1, (n * queryBlock + maxScores - 1) / maxScores)
        return blocks == 1 ? n : ((n + blocks - 1) / blocks + 11) / 12 * 12
    }

    /// Floats rounded up to a 64-byte multiple (scratch sub-buffers stay aligned).
    static func aligned(_ floats: Int) -> Int { (floats + 15) / 16 * 16 }

    /// Floats of a `[ceil(O/6)][I][1][6]` packed matrix.
    static func packedFloats(outputs o: Int, inputs i: Int) -> Int { (o + 5) / 6 * 6 * i }

    /// Scratch floats `attend` needs for `channels` and `keys`.
    static func scratchFloats(channels c: Int, keys n: Int, chunk: Int, keyBlock: Int? = nil) -> Int {
        aligned(packedFloats(outputs: n, inputs: c)) + aligned(packedFloats(outputs: c, inputs: n)) + aligned(max(c, n) + 6)
            + aligned((keyBlock ?? self.keyBlock(keys: n)) * queryBlock) + 3 * aligned(queryBlock)
    }

    /// Attends `queries` columns of `q` (planes `queryStride` apart) over
    /// `keys` columns of `k` and `v` (planes `keyStride` apart) into `out`
    /// (planes `outStride` apart). `scratch` holds `scratchFloats` floats
    /// (of the same `keyBlock`; tests force small blocks).
    static func attend(q: UnsafePointer<Float>, queries m: Int, queryStride: Int,
                       k: UnsafePointer<Float>, v: UnsafePointer<Float>, keys n: Int, keyStride: Int,
                       out: UnsafeMutablePointer<Float>, outStride: Int, channels c: Int, scale: Float,
                       scratch: UnsafeMutablePointer<Float>, keyBlock: Int? = nil, _ ctx: ExecutionContext) {
        let kernels = ctx.kernels, chunk = kernels.chunk, kb = keyBlock ?? self.keyBlock(keys: n), workers = ctx.parallelism
        // Every step splits into output-disjoint parts across the context's threads (the
        // decoder's one wide head); the transformer's heads call this with one thread each.
        func conv(_ a: PlanarConvArgs, _ groups: Range<Int>, _ chunks: Range<Int>, _ inputs: Range<Int>) {
            let run = kernels.conv
            workers.forEachRange(groups.count) { r in run(a, (groups.lowerBound + r.lowerBound)..<(groups.lowerBound + r.upperBound), chunks, inputs) }
        }
        func perLane(_ lanes: Range<Int>, _ body: (Range<Int>) -> Void) {
            let v = kernels.lanes
            workers.forEachRange(lanes.count / v) { r in body((r.lowerBound * v)..<(r.upperBound * v)) }
        }
        precondition(kb == n || kb % 6 == 0, "key blocks are whole groups of 6")
        // Scores are computed key-major, S^T[j][i] = sum_c K[c][j] Q[c][i]: the
        // softmax then runs down planes with queries along the vectors, and
        // S^T is directly the input of O = V P^T (no transpose).
        let kT = scratch, vPacked = kT + aligned(packedFloats(outputs: n, inputs: c))
        let zeroBias = vPacked + aligned(packedFloats(outputs: c, inputs: n)), scores = zeroBias + aligned(max(c, n) + 6)
        let runningMax = scores + aligned(kb * queryBlock), runningSum = runningMax + aligned(queryBlock)
        let correction = runningSum + aligned(queryBlock), qb = queryBlock
        pack(k, into: kT, outputs: n, inputs: c, outStride: 1, inStride: keyStride)
        pack(v, into: vPacked, outputs: c, inputs: n, outStride: keyStride, inStride: 1)
        zeroBias.update(repeating: 0, count: max(c, n) + 6)
        scores.update(repeating: 0, count: kb * qb)  // lanes past the last query stay finite
        let outGroups = 0..<((c + 5) / 6)
        var i0 = 0
        while i0 < m {
            // Per-lane steps stop at the last vector with a query (the GEMMs' last chunk may be half used).
            let rows = min(qb, m - i0), o = out + i0, chunks = 0..<((rows + chunk - 1) / chunk)
            let lanes = 0..<((rows + kernels.lanes - 1) / kernels.lanes * kernels.lanes)
            runningMax.update(repeating: -.infinity, count: qb)
            runningSum.update(repeating: 0, count: qb)
            var j0 = 0
            while j0 < n {
                let j1 = min(n, j0 + kb)
                // Scores of keys j0..<j1 (groups of 6 keys; rows past `n` are not stored) at scores[j - j0].
                conv(PlanarConvArgs(input: q + i0, inputPlaneStride: queryStride, rowStride: 0, kernel: 1, tapOrigin: 0,
                                    weights: kT, bias: zeroBias, inChannels: c, outChannels: n,
                                    output: scores - j0 * qb, outputPlaneStride: qb, outputShift: 0, residual: nil, positions: rows),
                     (j0 / 6)..<((j1 + 5) / 6), chunks, 0..<c)
                let block = SoftmaxBlockArgs(scores: scores, planeStride: qb, planes: j1 - j0, scale: scale,
                                             runningMax: runningMax, runningSum: runningSum, correction: correction)
                perLane(lanes) { kernels.softmaxBlock(block, $0) }
                if j0 > 0 { perLane(lanes) { kernels.scaleColumns(o, outStride, c, $0, correction, false) } }
                // O (+)= V[:, j0..<j1] P: input channels j0..<j1 of the packed V; the first block starts from zero.
                conv(PlanarConvArgs(input: scores - j0 * qb, inputPlaneStride: qb, rowStride: 0, kernel: 1, tapOrigin: 0,
                                    weights: vPacked, bias: zeroBias, inChannels: n, outChannels: c,
                                    output: o, outputPlaneStride: outStride, outputShift: 0, residual: nil, positions: rows),
                     outGroups, chunks, j0..<j1)
                j0 = j1
            }
            perLane(lanes) { kernels.scaleColumns(o, outStride, c, $0, runningSum, true) }
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
