import Foundation

/// The runtime's tuning and A/B switches, read once from the environment at
/// start-up (all optional; the defaults are what every benchmark uses).
/// `movq bench` prints the value in force, so a figure always says how it
/// was made.
///
/// | variable | field | default |
/// |---|---|---|
/// | `MOVQ_ISA` | `isa`: force a lower kernel tier (`avx512vnni`, `avx512`, `avx2`, `portable`) | best tier of the CPU |
/// | `MOVQ_WINOGRAD=0` | `winograd`: direct 3x3 convolutions instead of Winograd F(2x2, 3x3) | on |
/// | `MOVQ_INT16=0` | `int16Winograd`: int8 models' 3x3 convolutions in fp32 Winograd instead of int16 | on |
/// | `MOVQ_U8S8=0` | `byteWinograd`: int8 Winograd GEMMs of plain and int16-layout files in int16 mode instead of byte mode (`WinogradByteWeights`: u8 x s8 on VNNI; s8-layout files always run byte mode) | on |
/// | `MOVQ_QUAD=0` | `quadLinears`: int8 linears as int16 pairs instead of u8 x s8 quads on VNNI tiers (the same 8-bit integers: identical outputs, A/B of speed) | on |
/// | `MOVQ_POSITIONS=N` | `minPositions`: positions per direct-conv task block | 256 |
/// | `MOVQ_L2=BYTES` | `l2Budget`: cache budget that sizes input-channel blocks | half the L2 |
/// | `MOVQ_ATTENTION_BLOCK=BYTES` | `attentionBlock`: largest `[C][block]` buffer of the spatial attention's projections | 8 MiB |
public struct RuntimeOptions: Sendable, Equatable, CustomStringConvertible {
    /// `MOVQ_ISA`: a tier to force (`avx512vnni`, `avx512`, `avx2`, `portable`), nil for the best one.
    public var isa: String?
    /// `MOVQ_WINOGRAD=0` turns Winograd off for stride-1 3x3 convolutions (A/B runs).
    public var winograd: Bool
    /// `MOVQ_INT16_WINOGRAD=0` runs int8 models' 3x3 convolutions in fp32 Winograd.
    public var int16Winograd: Bool
    /// `MOVQ_U8S8=0` keeps int8 Winograd GEMMs of plain and int16-layout files in int16 mode (A/B and accuracy runs).
    public var byteWinograd: Bool
    /// `MOVQ_QUAD=0` runs int8 linears as int16 pairs on VNNI tiers too (same integers, same outputs).
    public var quadLinears: Bool
    /// `MOVQ_MIN_POSITIONS`: positions per GEMM task (at least two image rows are used).
    public var minPositions: Int
    /// `MOVQ_L2_BUDGET`: bytes of input slice a GEMM task keeps in L2.
    public var l2Budget: Int
    /// `MOVQ_ATTENTION_BLOCK`: bytes of the spatial attention's per-block buffers (tests force tiny blocks).
    public var attentionBlock: Int

    /// The options an environment sets (unset or unparsable variables keep the defaults).
    public init(environment env: [String: String]) {
        isa = env["MOVQ_ISA"].flatMap { $0.isEmpty ? nil : $0 }
        winograd = env["MOVQ_WINOGRAD"] != "0"
        int16Winograd = env["MOVQ_INT16"] != "0"
        quadLinears = env["MOVQ_QUAD"] != "0"
        byteWinograd = env["MOVQ_U8S8"] != "0"
        minPositions = env["MOVQ_POSITIONS"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } ?? 256
        l2Budget = env["MOVQ_L2"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } ?? CacheInfo.l2Bytes / 2
        attentionBlock = env["MOVQ_ATTENTION_BLOCK"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } ?? 8 << 20
    }

    /// This process's options.
    public static let current = RuntimeOptions(environment: ProcessInfo.processInfo.environment)

    /// `isa=... winograd=on ...`, one line.
    public var description: String {
        func onOff(_ b: Bool) -> String { b ? "on" : "off" }
        return "isa=\(isa ?? "auto") winograd=\(onOff(winograd)) int16-winograd=\(onOff(int16Winograd)) u8s8-winograd=\(onOff(byteWinograd)) quad-linears=\(onOff(quadLinears)) "
            + "min-positions=\(minPositions) l2-budget=\(l2Budget / 1024)KiB attention-block=\(attentionBlock / 1024)KiB"
    }
}
