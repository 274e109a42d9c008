/// Measures a core's FMA throughput with this tier's vectors: 12 independent
/// accumulator chains (enough to cover FMA latency x ports), no memory traffic.
public enum PeakProbe<V: SIMD, M: MulAdd> where V.Scalar == Float {
    /// Runs `iterations` rounds; returns a value to keep the work alive.
    /// FLOPs performed = iterations * 12 * 2 * V.scalarCount.
    @inlinable
    public static func run(iterations: Int) -> Float {
        let a = V(repeating: 0.999_999), b = V(repeating: 1e-7)
        var c0 = V(repeating: 1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0
        var c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0
        for _ in 0..<iterations {
            c0 = M.madd(b, c0, a); c1 = M.madd(b, c1, a); c2 = M.madd(b, c2, a); c3 = M.madd(b, c3, a)
            c4 = M.madd(b, c4, a); c5 = M.madd(b, c5, a); c6 = M.madd(b, c6, a); c7 = M.madd(b, c7, a)
            c8 = M.madd(b, c8, a); c9 = M.madd(b, c9, a); c10 = M.madd(b, c10, a); c11 = M.madd(b, c11, a)
        }
        return (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11).sum()
    }
}
