import MoVQKernelCore

/// One tier of SIMD kernels (an ISA level: `avx512vnni`, `avx512`, `avx2`,
/// or `portable`), as the public API names them. The kernels themselves are
/// internal: a tier is chosen, not called.
public struct KernelTier: Sendable, Equatable {
    /// The tier's name.
    public var name: String { kernels.name }
    let kernels: KernelSet

    init(_ kernels: KernelSet) { self.kernels = kernels }

    /// The tiers this CPU can run, best first (lower tiers always run).
    public static var available: [KernelTier] { Platform.availableTiers.compactMap(named) }

    /// The tier called `name`, if this CPU can run it.
    public static func named(_ name: String) -> KernelTier? { Platform.kernels(named: name).map(KernelTier.init) }

    /// The process-wide choice: the best tier, or the one `MOVQ_ISA` forces.
    public static var best: KernelTier { KernelTier(Platform.kernels) }

    /// Tiers are equal when they are the same ISA level.
    public static func == (a: KernelTier, b: KernelTier) -> Bool { a.name == b.name }
}
