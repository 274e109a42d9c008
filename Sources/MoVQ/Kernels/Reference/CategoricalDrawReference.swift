import Foundation
import MoVQKernelCore

/// `CategoricalDraw.draw` one code at a time: the same numbers, written as
/// the plain loop (test reference).
enum CategoricalDrawReference {
    static func draw(_ logits: [Float], inverseTemperature t: Float, uniform: Double) -> (token: Int, logProbability: Float) {
        let k = logits.count, lanes = CategoricalDraw.lanes, chunks = (k + lanes - 1) / lanes
        let l = logits.map { $0 * t }
        let m = l.max()!
        // exp one code at a time through the same vexp (a 2-lane vector, lane 0).
        var e = [Float](repeating: 0, count: chunks * lanes)
        for j in 0..<k { e[j] = vexp(SIMD2(repeating: l[j] - m), SeparateMulAdd.self)[0] }
        var sums = [Float](repeating: 0, count: chunks), total: Float = 0
        for c in 0..<chunks {
            var a = Array(e[(c * lanes)..<((c + 1) * lanes)])
            var width = lanes / 2
            while width >= 1 {
                for i in 0..<width { a[i] = a[i] + a[i + width] }
                width /= 2
            }
            sums[c] = a[0]
            total += sums[c]
        }
        let target = Float(uniform) * total
        var prefix: Float = 0
        for c in 0..<chunks {
            guard prefix + sums[c] >= target else { prefix += sums[c]; continue }
            let end = min(k, (c + 1) * lanes)
            var token = end - 1
            for j in (c * lanes)..<end {
                prefix += e[j]
                if prefix >= target { token = j; break }
            }
            return (token, (l[token] - m) - Foundation.log(total))
        }
        return (k - 1, (l[k - 1] - m) - Foundation.log(total))
    }
}
