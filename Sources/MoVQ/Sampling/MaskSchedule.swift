import Foundation

/// The fraction of tokens still masked after step `t` of `T`, as a function
/// of `r = (t + 1) / T` (the official MaskGIT `mask_schedule`), clipped to
/// [1e-6, 1] and computed in Float32 like the reference.
public enum MaskSchedule: Sendable, Equatable {
    /// `cos(pi/2 r)` (the default).
    case cosine
    /// `1 - r`.
    case linear
    /// `1 - r^k`.
    case power(Float)
    /// `-log2(r) / log2(N0)`.
    case log
    /// `1 - 2^(-log2(N0) (1 - r))`.
    case exp

    /// Parses "cosine", "linear", "pow<k>" (e.g. "pow2"), "log", "exp".
    public init?(name: String) {
        switch name {
        case "cosine": self = .cosine
        case "linear", "uniform": self = .linear
        case "log": self = .log
        case "exp": self = .exp
        default:
            guard name.hasPrefix("pow"), let k = Float(name.dropFirst(3)), k > 0 && k < 1000 else { return nil }
            self = .power(k)
        }
    }

    /// gamma(r) for `n0` tokens unknown at the start.
    public func gamma(_ r: Double, unknownAtStart n0: Int) -> Float {
        let r = Float(r), l = Foundation.log2(Float(max(n0, 2)))
        let g: Float
        switch self {
        case .cosine: g = cos(Float(Double.pi / 2) * r)
        case .linear: g = 1 - r
        case .power(let k): g = 1 - pow(r, k)
        case .log: g = -Foundation.log2(r) / l
        case .exp: g = 1 - exp2(-l * (1 - r))
        }
        return min(max(g, 1e-6), 1)
    }
}
