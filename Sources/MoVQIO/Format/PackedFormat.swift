/// The packed model format (`.mvq`). Specified in Docs/FORMAT.md:
///
///     0   8 bytes  magic "MOVQPACK"
///     8   u32      format version (1)
///     12  u32      flags (0)
///     16  u64      header length in bytes (JSON, UTF-8)
///     24  u32      CRC-32 of the header bytes
///     28  u32      reserved (0)
///     32  ...      header JSON, then zero padding to a 64-byte boundary
///     ...          tensor data, each tensor at a 64-byte aligned offset
///
/// All integers are little-endian. Tensor offsets are absolute.
public enum PackedFormat {
    /// The first 8 bytes of every packed file.
    public static let magic: [UInt8] = Array("MOVQPACK".utf8)
    /// The format version this build reads and writes.
    public static let version: UInt32 = 1
    /// Tensor data offsets are multiples of this (bytes), for aligned mapping.
    public static let alignment = 64
    /// Bytes before the JSON header: magic, version, header length, header CRC.
    public static let fixedHeaderSize = 32
    /// Largest header we accept; a bigger claim means a corrupt file.
    public static let maxHeaderBytes = 64 << 20
    /// The header's `format` field.
    public static let formatName = "movq-packed"
    /// Element types a packed file may store.
    public static let dtypes: Set<DType> = [.f32, .f16, .i8, .i16]
    /// Tensor layouts this build reads; any other is refused.
    public static let layouts: Set<String> = Set(TensorLayout.allCases.map(\.rawValue))
}

/// One entry of the tensor table.
public struct PackedTensorEntry: Codable, Equatable, Sendable {
    /// Canonical (diffusers) tensor name.
    public var name: String
    /// Element type as stored.
    public var dtype: DType
    /// Logical shape (OIHW for convolutions, [out, in] for projections).
    public var shape: [Int]
    /// Arrangement of the stored values (a `TensorLayout` name); "plain" is row-major in `shape`.
    public var layout: String
    /// Absolute byte offset (a multiple of 64).
    public var offset: Int
    /// Stored byte count.
    public var bytes: Int
    /// CRC-32 of the stored bytes.
    public var crc32: UInt32
    /// For int8 weights: name of the f32 tensor of per-output-channel scales.
    public var scales: String?

    /// Elements of the tensor (the product of its shape).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The JSON header of a packed file.
public struct PackedHeader: Codable, Equatable, Sendable {
    /// Always "movq-packed".
    public var format: String = PackedFormat.formatName
    /// What the file holds: "vq-autoencoder" (`config`) or "maskgit-prior" (`prior`).
    public var kind: String = "vq-autoencoder"
    /// The autoencoder's architecture (kind "vq-autoencoder").
    public var config: MoVQConfig?
    /// The prior's architecture (kind "maskgit-prior").
    public var prior: PriorConfig?
    /// Tensor table in file order.
    public var tensors: [PackedTensorEntry]
    /// Free-form provenance (source file, converter version, precision).
    public var metadata: [String: String]
}
