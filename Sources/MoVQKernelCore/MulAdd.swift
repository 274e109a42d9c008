/// How a kernel instantiation multiplies and adds. Tiers whose target has
/// FMA use `FusedMulAdd` (one rounding); the x86 baseline has no FMA and
/// would turn `addingProduct` into libm calls, so it uses `SeparateMulAdd`.
public protocol MulAdd {
    static func madd<V: SIMD>(_ acc: V, _ a: V, _ b: V) -> V where V.Scalar == Float
}

public enum FusedMulAdd: MulAdd {
    @inlinable @inline(__always)
    public static func madd<V: SIMD>(_ acc: V, _ a: V, _ b: V) -> V where V.Scalar == Float { acc.addingProduct(a, b) }
}

public enum SeparateMulAdd: MulAdd {
    @inlinable @inline(__always)
    public static func madd<V: SIMD>(_ acc: V, _ a: V, _ b: V) -> V where V.Scalar == Float { acc + a * b }
}

@inlinable @inline(__always)
func load<V: SIMD>(_ p: UnsafePointer<Float>, as: V.Type = V.self) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

@inlinable @inline(__always)
func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}
