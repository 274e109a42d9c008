import CPUFeatures
import Foundation
import MoVQKernelCore
#if arch(x86_64)
import MoVQKernelsAVX2
import MoVQKernelsAVX512
import MoVQKernelsAVX512VNNI
import MoVQKernelsLaneEmulation
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

    /// Test-only tiers this CPU can run (`MoVQKernelsLaneEmulation`): AVX2
    /// with AVX-512's 16 lanes and ARM64's 4, so one machine checks that
    /// outputs do not depend on the vector width. Never chosen by default.
    static var laneEmulationTiers: [String] {
        #if arch(x86_64)
        if movq_cpu_has_avx2_fma() != 0 { return ["avx2x16", "avx2x4"] }
        #endif
        return []
    }

    /// The fused multiply-add tiers this CPU can run, real and emulated:
    /// these must all compute the same bits (x86's portable tier has no FMA).
    static var fusedTiers: [String] {
        availableTiers.filter { $0 != "portable" || isARM } + laneEmulationTiers
    }

    static var isARM: Bool {
        #if arch(arm64)
        return true
        #else
        return false
        #endif
    }

    /// Kernels of a named tier if this CPU supports it.
    static func kernels(named name: String) -> KernelSet? {
        #if arch(x86_64)
        if laneEmulationTiers.contains(name) { return name == "avx2x16" ? avx2Lanes16Kernels : avx2Lanes4Kernels }
        #endif
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
