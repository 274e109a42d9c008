/// Multichannel vector quantizer with one shared codebook `[K, d]`.
/// A latent `[B, c*d, h, w]` is split into c chunks of d channels; each chunk
/// snaps to its nearest codebook row (squared L2, ties to the lowest index).
struct Quantizer: @unchecked Sendable {
    let codebook: [Float]
    let size: Int, dim: Int, chunks: Int

    init(config c: MoVQConfig, file: PackedFile) throws {
        size = c.numVQEmbeddings; dim = c.codebookDim; chunks = c.channelsPerPosition
        let spec = AutoencoderPlans.codebook(c)
        codebook = try file.floatArray(spec.name, shape: spec.shape)
    }

    /// Nearest code per (position, chunk).
    func nearest(_ z: Tensor, _ parallelism: Parallelism) throws -> IndexMap {
        guard z.shape.count == 4, z.shape[1] == chunks * dim else {
            throw MoVQError.invalidInput("latent must be [B, \(chunks * dim), h, w], got \(z.shape)")
        }
        let b = z.shape[0], hw = z.shape[2] * z.shape[3]
        var out = [Int32](repeating: 0, count: b * chunks * hw)
        let (k, d, cb) = (size, dim, codebook)
        z.data.withUnsafeBufferPointer { zp in
            out.withUnsafeMutableBufferPointer { op in
                let zb = UnsafeSendableBox(zp), ob = UnsafeSendableBox(op)
                parallelism.forEachRange(b * chunks * hw, minimumChunk: 16) { range in
                    var v = [Float](repeating: 0, count: d)
                    for idx in range {
                        let pos = idx % hw, bc = idx / hw  // bc = image * chunks + chunk
                        for i in 0..<d { v[i] = zb.value[(bc * d + i) * hw + pos] }
                        var best = 0, bestDist = Float.infinity
                        for code in 0..<k {
                            var dist: Float = 0
                            for i in 0..<d { let t = v[i] - cb[code * d + i]; dist += t * t }
                            if dist < bestDist { bestDist = dist; best = code }
                        }
                        ob.value[idx] = Int32(best)
                    }
                }
            }
        }
        return try IndexMap(shape: [b, chunks, z.shape[2], z.shape[3]], values: out)
    }

    /// Batched codebook lookup: `[B, c, h, w]` -> z_q `[B, c*d, h, w]`.
    func lookup(_ indices: IndexMap) throws -> Tensor {
        guard indices.shape[1] == chunks else {
            throw MoVQError.invalidInput("index map has \(indices.shape[1]) indices per position, the model uses \(chunks)")
        }
        let b = indices.shape[0], hw = indices.shape[2] * indices.shape[3]
        var z = Tensor(zeros: [b, chunks * dim, indices.shape[2], indices.shape[3]])
        for bc in 0..<(b * chunks) {
            for pos in 0..<hw {
                let code = Int(indices.values[bc * hw + pos])
                guard code >= 0 && code < size else {
                    throw MoVQError.invalidInput("index \(code) at [\(bc / chunks), \(bc % chunks), \(pos / indices.shape[3]), \(pos % indices.shape[3])] is outside the codebook (0..<\(size))")
                }
                for i in 0..<dim { z.data[(bc * dim + i) * hw + pos] = codebook[code * dim + i] }
            }
        }
        return z
    }
}
