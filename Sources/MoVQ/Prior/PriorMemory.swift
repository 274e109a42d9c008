/// Working-memory estimates of the priors, from their configs alone (see
/// `MemoryLimit`): what a forward or a sampling session allocates, plus the
/// resident weights (packed copies and, for fp16/int8 files, widened ones).
extension PriorConfig {
    /// Weight elements the file holds for this config.
    var weightElements: Double { tensorSpecs(for: self).reduce(0.0) { $0 + Double($1.shape.reduce(1, *)) } }

    /// Estimated bytes of one MaskGIT forward over `sequences` token maps
    /// (each image of a guided sample counts twice): the planar activations,
    /// attention scratch, and the logits with the sampler's copies.
    public func estimatedMaskGITBytes(sequences b: Int) -> Double {
        let s = Double(positions + 1), cols = Double(b) * s, d = Double(hidden)
        let mlpRows = Double(max(isGEGLU ? 2 * mlp : mlp, codes))
        let activations = cols * (6 * d + mlpRows) * 4
        let attention = 2 * s * s * 4 * 2
        let logits = Double(b) * Double(positions) * Double(channels) * Double(codes) * 4 * 3
        return weightElements * 8 + activations + attention + logits + 32e6
    }

    /// Estimated bytes of an autoregressive session of `batch` images: the
    /// key/value caches and the per-step buffers.
    public func estimatedGPTBytes(batch: Int) -> Double {
        let length = Double(positions * channels + 1), d = Double(hidden), b = Double(batch)
        let cache = 2 * Double(layers) * b * length * d * 4
        let buffers = (b + 32) * (6 * d + Double(max(isGEGLU ? 2 * mlp : mlp, codes))) * 4
        return weightElements * 8 + cache + buffers + b * length * 8 + 32e6
    }
}
