import Foundation

/// Settings of autoregressive (raster-order) sampling.
public struct AutoregressiveSettings: Sendable, Equatable {
    /// Logits are divided by it.
    public var temperature: Double = 1
    /// Keep only the `topK` most likely codes (0 = all; taming's default is 250).
    public var topK: Int = 0
    /// Keep the smallest set of most likely codes whose probability reaches `topP` (1 = all).
    public var topP: Double = 1

    /// Settings with the defaults: temperature 1, no top-k, no top-p.
    public init(temperature: Double = 1, topK: Int = 0, topP: Double = 1) {
        self.temperature = temperature; self.topK = topK; self.topP = topP
    }

    /// Throws `MoVQError.invalidInput` on a temperature below 0.01 (logits
    /// divided by less overflow), negative top-k or top-p outside (0, 1].
    public func validate() throws {
        guard temperature >= 0.01 && temperature.isFinite else { throw MoVQError.invalidInput("temperature must be at least 0.01, got \(temperature)") }
        guard topK >= 0 else { throw MoVQError.invalidInput("top-k must be >= 0") }
        guard topP > 0 && topP <= 1 else { throw MoVQError.invalidInput("top-p must be in (0, 1]") }
    }
}

/// One autoregressive draw, as `Tools/reference/maskgit_reference.py` (`filter_logits`,
/// `ar_sample`) does it: temperature, then top-k (ties at the k-th value
/// kept), then top-p over the descending order (at least one code), then an
/// inverse-CDF draw in code order with one uniform.
public enum AutoregressiveSampler {
    /// The filtered, unnormalized log-probabilities (removed codes: -inf).
    public static func filtered(_ logits: ArraySlice<Float>, _ s: AutoregressiveSettings) -> [Double] {
        var x = logits.map { Double($0) / s.temperature }
        if s.topK > 0 && s.topK < x.count {
            let kth = x.sorted()[x.count - s.topK]
            for i in x.indices where x[i] < kth { x[i] = -.infinity }
        }
        if s.topP < 1 {
            let mx = x.max()!
            var p = x.map { Foundation.exp($0 - mx) }
            let total = p.reduce(0, +)
            p = p.map { $0 / total }
            let order = x.indices.sorted { x[$0] != x[$1] ? x[$0] > x[$1] : $0 < $1 }
            var cum = 0.0, keep = order.count
            for (i, j) in order.enumerated() {
                cum += p[j]
                if cum >= s.topP { keep = i + 1; break }
            }
            for j in order[keep...] { x[j] = -.infinity }
        }
        return x
    }

    /// The code drawn from filtered log-probabilities with uniform `u` in (0, 1).
    public static func draw(_ x: [Double], _ u: Double) -> Int {
        let mx = x.max()!
        var cdf = [Double](repeating: 0, count: x.count), acc = 0.0
        for i in x.indices { acc += Foundation.exp(x[i] - mx); cdf[i] = acc }
        let target = u * acc
        return min(cdf.filter { $0 < target }.count, x.count - 1)
    }
}
