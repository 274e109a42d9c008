import Foundation

/// A packed model file, memory-mapped and validated.
///
/// Opening checks the magic, version, header checksum and that every tensor
/// lies inside the file; with `verifyChecksums` it also checks each tensor's
/// CRC. fp32 tensors are used in place (no copy); other types are widened to
/// fp32 on first use.
public final class PackedFile: @unchecked Sendable {
    /// Where the file was opened from.
    public let path: String
    /// The validated header: kind, config, tensor table, metadata.
    public let header: PackedHeader
    /// Bytes of the file.
    public let fileSize: Int
    package let map: MappedFile
    private var index: [String: PackedTensorEntry] = [:]

    /// Opens and validates `path` (see the type's description); `verifyChecksums` also checks every tensor's CRC-32.
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
        }
        if verifyChecksums {
            // Tensors are checked on all cores (the CRC is most of opening a
            // large model); the first mismatch in table order is reported.
            let tensors = header.tensors, map = map
            let matches = UnsafeMutableBufferPointer<Bool>.allocate(capacity: tensors.count)
            matches.initialize(repeating: false)
            defer { matches.deallocate() }
            let slots = SendableBools(matches)
            DispatchQueue.concurrentPerform(iterations: tensors.count) { t in
                let e = tensors[t]
                let raw = UnsafeRawBufferPointer(rebasing: map.bytes[e.offset..<(e.offset + e.bytes)])
                slots.base[t] = CRC32.update(0, raw) == e.crc32
                map.releaseResidentPages(e.offset..<(e.offset + e.bytes))  // verified: no need to keep it in memory
            }
            if let bad = matches.firstIndex(of: false) {
                throw MoVQError.corruptFile(path: path, reason: "checksum mismatch in tensor '\(tensors[bad].name)'")
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

    /// Calls `body` with the tensor as fp32 values of the expected shape:
    /// the mapped bytes themselves for fp32 tensors, a temporary widened copy
    /// for fp16 and int8 ones (int8: `q * scale` per output channel), which
    /// is freed when `body` returns, so nothing widened stays resident; the
    /// tensor's mapped pages are released afterwards too (they fault back
    /// in from the page cache if read again).
    public func withFloats<R>(_ name: String, shape: [Int], _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard let e = index[name] else { throw MoVQError.missingTensor(name) }
        guard e.shape == shape else { throw MoVQError.shapeMismatch(tensor: name, expected: shape, found: e.shape) }
        defer { map.releaseResidentPages(e.offset..<(e.offset + e.bytes)) }  // read once: the pages may go
        if e.dtype == .f32 { return try body(rawBytes(e).bindMemory(to: Float.self)) }
        var values = decodeFloats(rawBytes(e), dtype: e.dtype, count: e.elementCount)
        if let scales = int8Scales(of: name) {
            let per = e.elementCount / max(1, shape[0])
            for i in values.indices { values[i] *= scales[i / per] }
        }
        return try values.withUnsafeBufferPointer(body)
    }

    /// The tensor as an fp32 array of the expected shape (a copy).
    public func floatArray(_ name: String, shape: [Int]) throws -> [Float] {
        try withFloats(name, shape: shape) { Array($0) }
    }

    /// The per-output-channel scales of an int8-stored tensor (nil for fp32/fp16).
    public func int8Scales(of name: String) -> UnsafeBufferPointer<Float>? {
        guard let e = index[name], e.dtype == .i8, let sname = e.scales, let se = index[sname] else { return nil }  // validated at open
        return rawBytes(se).bindMemory(to: Float.self)
    }
}

/// One result slot per tensor, written by concurrent workers (each its own index).
private struct SendableBools: @unchecked Sendable {
    let base: UnsafeMutableBufferPointer<Bool>
    init(_ base: UnsafeMutableBufferPointer<Bool>) { self.base = base }
}
