import Foundation

/// A packed model file, memory-mapped and validated.
///
/// Opening checks the magic, version, header checksum and that every tensor
/// lies inside the file; with `verifyChecksums` it also checks each tensor's
/// CRC. fp32 tensors are used in place (no copy); other types are widened to
/// fp32 on first use.
public final class PackedFile: @unchecked Sendable {
    public let path: String
    public let header: PackedHeader
    public let fileSize: Int
    package let map: MappedFile
    private var index: [String: PackedTensorEntry] = [:]
    private var widened: [String: UnsafeMutableBufferPointer<Float>] = [:]
    private let lock = NSLock()

    public init(path: String, verifyChecksums: Bool = true) throws {
        self.path = path
        map = try MappedFile(path: path)
        fileSize = map.bytes.count
        var r = ByteReader(map.bytes, path: path)
        let magic = try r.bytes(8, "magic")
        guard Array(magic) == PackedFormat.magic else {
            throw MoVQError.corruptFile(path: path, reason: "not a packed .mvq model (bad magic); checkpoints must be converted first: movq convert CHECKPOINT -o MODEL.mvq")
        }
        let version = try r.u32("version")
        guard version == PackedFormat.version else {
            throw MoVQError.unsupported("\(path): packed format version \(version) (this build reads \(PackedFormat.version))")
        }
        _ = try r.u32("flags")
        let headerLen = try r.u64("header length")
        let headerCRC = try r.u32("header checksum")
        _ = try r.u32("reserved")
        guard headerLen <= UInt64(PackedFormat.maxHeaderBytes), Int(headerLen) <= r.remaining else {
            throw MoVQError.corruptFile(path: path, reason: "header length \(headerLen) exceeds the file (\(fileSize) bytes)")
        }
        let hb = try r.bytes(Int(headerLen), "header")
        guard CRC32.update(0, hb) == headerCRC else {
            throw MoVQError.corruptFile(path: path, reason: "header checksum mismatch")
        }
        // The strict reader refuses duplicate keys and deep nesting, which JSONDecoder would accept.
        _ = try StrictJSON.parse(hb, path: path, what: "header")
        do {
            header = try JSONDecoder().decode(PackedHeader.self, from: Data(hb))
        } catch {
            throw MoVQError.corruptFile(path: path, reason: "header is not valid JSON for this version (\(error))")
        }
        guard header.format == PackedFormat.formatName else {
            throw MoVQError.corruptFile(path: path, reason: "header format '\(header.format)' is not '\(PackedFormat.formatName)'")
        }
        switch (header.kind, header.config, header.prior) {
        case ("vq-autoencoder", let c?, nil): try c.validate()
        case ("maskgit-prior", nil, let p?): try p.validate()
        default: throw MoVQError.corruptFile(path: path, reason: "header kind '\(header.kind)' does not match its config")
        }
        for e in header.tensors {
            func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: "tensor '\(e.name)' \(why)") }
            guard PackedFormat.dtypes.contains(e.dtype) else {
                throw bad("has dtype \(e.dtype.rawValue); the format stores \(PackedFormat.dtypes.map(\.rawValue).joined(separator: ", "))")
            }
            guard PackedFormat.layouts.contains(e.layout) else {
                throw MoVQError.unsupported("\(path): tensor '\(e.name)' has layout '\(e.layout)', which this build does not know (it reads \(PackedFormat.layouts.joined(separator: ", ")))")
            }
            guard e.shape.count <= 8, e.shape.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }),
                  let bytes = CheckedSize.bytes(e.shape, elementSize: e.dtype.size, limit: fileSize) else {
                throw bad("has shape \(e.shape), more than the \(fileSize)-byte file can hold")
            }
            guard e.bytes == bytes, e.offset >= 0, e.offset % PackedFormat.alignment == 0,
                  e.offset <= fileSize, e.bytes <= fileSize - e.offset else {
                throw bad("lies outside the file or has a bad size")
            }
            guard index[e.name] == nil else { throw MoVQError.corruptFile(path: path, reason: "duplicate tensor '\(e.name)'") }
            index[e.name] = e
            if verifyChecksums {
                let raw = UnsafeRawBufferPointer(rebasing: map.bytes[e.offset..<(e.offset + e.bytes)])
                guard CRC32.update(0, raw) == e.crc32 else {
                    throw MoVQError.corruptFile(path: path, reason: "checksum mismatch in tensor '\(e.name)'")
                }
            }
        }
        // int8 tensors need their per-output-channel scales: f32, one per row, finite.
        for e in header.tensors where e.dtype == .i8 {
            guard let sname = e.scales, let se = index[sname], se.dtype == .f32, se.shape == [e.shape.first ?? -1] else {
                throw MoVQError.corruptFile(path: path, reason: "int8 tensor '\(e.name)' lacks an f32 scale tensor with one scale per output channel")
            }
            guard rawBytes(se).bindMemory(to: Float.self).allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw MoVQError.corruptFile(path: path, reason: "int8 scales '\(sname)' hold a negative, NaN or infinite value")
            }
        }
    }

    deinit { for (_, b) in widened { b.deallocate() } }

    /// The decoder a prior file names (metadata `decoder`, relative to this
    /// file's folder), if any.
    public var namedDecoderPath: String? {
        header.metadata["decoder"].map { URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent($0).path }
    }

    /// The table entry for `name`, if present.
    public func entry(_ name: String) -> PackedTensorEntry? { index[name] }

    /// Raw stored bytes of a tensor.
    public func rawBytes(_ e: PackedTensorEntry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: map.bytes[e.offset..<(e.offset + e.bytes)])
    }

    /// The tensor as fp32 values with the expected shape. Valid while this
    /// file object lives.
    public func floats(_ name: String, shape: [Int]) throws -> UnsafeBufferPointer<Float> {
        guard let e = index[name] else { throw MoVQError.missingTensor(name) }
        guard e.shape == shape else { throw MoVQError.shapeMismatch(tensor: name, expected: shape, found: e.shape) }
        if e.dtype == .f32 {
            return rawBytes(e).bindMemory(to: Float.self)
        }
        lock.lock(); defer { lock.unlock() }
        if let w = widened[name] { return UnsafeBufferPointer(w) }
        var values = decodeFloats(rawBytes(e), dtype: e.dtype, count: e.elementCount)
        if e.dtype == .i8, let sname = e.scales, let se = index[sname] {  // validated at open
            let scales = rawBytes(se).bindMemory(to: Float.self)
            let per = e.elementCount / max(1, shape[0])
            for i in values.indices { values[i] *= scales[i / per] }
        }
        let buf = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
        _ = buf.initialize(from: values)
        widened[name] = buf
        return UnsafeBufferPointer(buf)
    }
}
