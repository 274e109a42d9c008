import CPUFeatures
import Foundation
import MoVQKernelCore
#if arch(x86_64)
import MoVQKernelsAVX2
import MoVQKernelsAVX512
import MoVQKernelsAVX512VNNI
#endif

/// The kernel tier this process uses, chosen once from CPUID. Set the
/// environment variable `MOVQ_ISA` to `avx512`, `avx2` or `portable` to force a lower
/// tier (tests do this so every tier runs on every machine); asking for a
/// tier the CPU lacks falls back to the best available one.
enum Platform {
    /// Tiers this CPU can run, best first.
    static var availableTiers: [String] {
        var t: [String] = []
        #if arch(x86_64)
        if movq_cpu_has_avx512_vnni() != 0 { t.append("avx512vnni") }
        if movq_cpu_has_avx512() != 0 { t.append("avx512") }
        if movq_cpu_has_avx2_fma() != 0 { t.append("avx2") }
        #endif
        t.append("portable")
        return t
    }

    /// Kernels of a named tier if this CPU supports it.
    static func kernels(named name: String) -> KernelSet? {
        guard availableTiers.contains(name) else { return nil }
        #if arch(x86_64)
        if name == "avx512vnni" { return avx512VNNIKernels }
        if name == "avx512" { return avx512Kernels }
        if name == "avx2" { return avx2Kernels }
        #endif
        return portableKernels
    }

    /// The process-wide choice.
    static let kernels: KernelSet = {
        if let forced = RuntimeOptions.current.isa, let k = kernels(named: forced) { return k }
        return kernels(named: availableTiers[0])!
    }()
}
