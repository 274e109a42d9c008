/// Per-output-channel symmetric int8 weight quantization:
/// `scale[o] = max |w[o, ...]| / 127`, `q = round(w / scale[o])` in
/// [-127, 127] (ties away from zero), so `w ≈ q * scale[o]` with an error of
/// at most `scale[o] / 2` per weight. A channel of zeros gets scale 0.
public enum Int8Weights {
    /// Quantizes `values` (row-major, `outChannels` rows of equal length).
    public static func quantize(_ values: [Float], outChannels: Int) -> (q: [Int8], scales: [Float]) {
        precondition(outChannels > 0 && values.count % outChannels == 0)
        let per = values.count / outChannels
        var q = [Int8](repeating: 0, count: values.count)
        var scales = [Float](repeating: 0, count: outChannels)
        for o in 0..<outChannels {
            let row = values[(o * per)..<((o + 1) * per)]
            let maxAbs = row.reduce(Float(0)) { max($0, abs($1)) }
            guard maxAbs > 0 else { continue }
            let scale = maxAbs / 127
            scales[o] = scale
            for (i, v) in zip(row.indices, row) {
                q[i] = Int8(max(-127, min(127, (v / scale).rounded(.toNearestOrAwayFromZero))))
            }
        }
        return (q, scales)
    }

    /// Widened weights `w = Float(q) * scales[o]` (`q` row-major, one row per scale).
    public static func widen(_ q: UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>) -> [Float] {
        let rows = max(1, scales.count), per = q.count / rows
        precondition(per * scales.count == q.count, "widen: \(q.count) values do not split into \(scales.count) rows")
        return [Float](unsafeUninitializedCapacity: q.count) { out, initialized in
            for r in 0..<scales.count {
                let scale = scales[r]
                for i in (r * per)..<((r + 1) * per) { out[i] = Float(q[i]) * scale }
            }
            initialized = q.count
        }
    }

    /// The name of the scale tensor that belongs to int8 tensor `name`.
    public static func scaleName(_ name: String) -> String { name + ".scale" }
}
