import Foundation
import MoVQKernelCore

/// One token drawn from `softmax(logits / temperature)` by inverse CDF in
/// code order, with its log-probability: the inner step of MaskGIT sampling.
///
/// The arithmetic is fixed so every CPU gives the same bits: codes in chunks
/// of 16 lanes (`SIMD16<Float>`, whatever the vector width), the SIMD `vexp`
/// without fused multiply-adds, each chunk summed by a fixed halving tree,
/// chunk sums added in code order. The CDF is walked chunk by chunk with the
/// same chunk sums, then code by code inside the chunk that crosses the
/// target. `CategoricalDrawReference` computes the same numbers one code at
/// a time.
enum CategoricalDraw {
    static let lanes = 16
    typealias Chunk = SIMD16<Float>

    /// Floats of scratch `draw` needs for `codes` codes.
    static func scratchCount(codes: Int) -> Int { (codes + lanes - 1) / lanes * (lanes + 1) }

    /// The token and its log-probability for `logits[0..<codes]`, drawn
    /// with `uniform` in (0, 1). `scratch` holds `scratchCount(codes:)` floats.
    static func draw(_ logits: UnsafePointer<Float>, codes k: Int, inverseTemperature t: Float, uniform: Double,
                     scratch: UnsafeMutablePointer<Float>) -> (token: Int, logProbability: Float) {
        let chunks = (k + lanes - 1) / lanes
        let e = scratch, sums = scratch + chunks * lanes
        @inline(__always) func scaled(_ c: Int) -> Chunk {
            if (c + 1) * lanes <= k { return UnsafeRawPointer(logits + c * lanes).loadUnaligned(as: Chunk.self) * t }
            var v = Chunk(repeating: -.infinity)
            for j in 0..<(k - c * lanes) { v[j] = logits[c * lanes + j] * t }
            return v
        }
        var mv = Chunk(repeating: -.infinity)
        for c in 0..<chunks { mv = pointwiseMax(mv, scaled(c)) }
        let m = mv.max()
        var total: Float = 0
        for c in 0..<chunks {
            let l = scaled(c)
            // Lanes past the last code (-inf) are 0, not vexp's floor.
            let x = vexp(l - m, SeparateMulAdd.self).replacing(with: 0, where: l .== -.infinity)
            UnsafeMutableRawPointer(e + c * lanes).storeBytes(of: x, as: Chunk.self)
            let s = treeSum(x)
            sums[c] = s
            total += s
        }
        let target = Float(uniform) * total
        var prefix: Float = 0, token = k - 1
        search: for c in 0..<chunks {
            if prefix + sums[c] >= target {
                let end = min(k, (c + 1) * lanes)
                token = end - 1
                for j in (c * lanes)..<end {
                    prefix += e[j]
                    if prefix >= target { token = j; break search }
                }
                break search
            }
            prefix += sums[c]
        }
        return (token, (logits[token] * t - m) - Foundation.log(total))
    }

    /// The sum of 16 lanes by halving: (a[i] + a[i+8]), then (+4), (+2), (+1).
    @inline(__always)
    static func treeSum(_ x: Chunk) -> Float {
        let h8 = x.lowHalf + x.highHalf, h4 = h8.lowHalf + h8.highHalf, h2 = h4.lowHalf + h4.highHalf
        return h2[0] + h2[1]
    }
}
