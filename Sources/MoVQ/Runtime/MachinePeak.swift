import Dispatch
import Foundation
import MoVQKernelCore

/// Measures the machine's fp32 FMA peak with a kernel tier's own vectors.
public enum MachinePeak {
    /// FLOP/s with `threads` threads each running the probe for about `seconds`.
    public static func measure(_ tier: KernelTier, threads: Int, seconds: Double = 0.3) -> Double {
        let k = tier.kernels
        let flopsPerRound = Double(24 * k.lanes)
        // Calibrate iterations on one thread.
        var n = 1 << 16
        while true {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = k.peakProbe(n)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if dt > 0.05 { n = Int(Double(n) * seconds / dt); break }
            n *= 4
        }
        let iterations = n
        let t0 = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: threads) { _ in _ = k.peakProbe(iterations) }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return flopsPerRound * Double(iterations) * Double(threads) / dt
    }
}

/// Peak resident set size of this process in bytes.
public func peakRSSBytes() -> Int {
    var u = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Int(u.ru_maxrss) * 1024
    #else
    getrusage(RUSAGE_SELF, &u)
    return Int(u.ru_maxrss)
    #endif
}
