import Foundation
import MoVQKernelCore

/// A packed model file, memory-mapped and validated.
///
/// Opening checks the magic, version, header checksum and that every tensor
/// lies inside the file; with `verifyChecksums` each tensor's CRC is checked
/// when it is read (`withFloats`, `withWeights`, `floatArray`), in the pass
/// that brings its pages in, and `verifyAllChecksums()` checks them all at
/// once. fp32 tensors are used in place (no copy); fp16 ones are widened to
/// fp32 when read, int8 ones too unless read with `withWeights`.
public final class PackedFile: @unchecked Sendable {
    /// Where the file was opened from.
    public let path: String
    /// The validated header: kind, config, tensor table, metadata.
    public let header: PackedHeader
    /// Bytes of the file.
    public let fileSize: Int
    package let map: MappedFile
    private var index: [String: PackedTensorEntry] = [:]
    /// Whether reads check the tensor's CRC-32.
    private let verifying: Bool

    /// Opens and validates `path` (see the type's description);
    /// `verifyChecksums` makes every tensor read check its CRC-32 first.
    public init(path: String, verifyChecksums: Bool = true) throws {
        self.path = path
        verifying = verifyChecksums
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
            guard let layout = TensorLayout(rawValue: e.layout) else {
                throw MoVQError.unsupported("\(path): tensor '\(e.name)' has layout '\(e.layout)', which this build does not know (it reads \(PackedFormat.layouts.sorted().joined(separator: ", ")))")
            }
            guard layout.dtype == nil ? e.dtype != .i16 : layout.dtype == e.dtype else {
                throw bad(layout.dtype.map { "has layout \(e.layout), which holds \($0.rawValue) values only" } ?? "has dtype i16, which only the int16 layouts hold")
            }
            guard e.shape.count <= 8, e.shape.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else { throw bad("has shape \(e.shape)") }
            guard layout.applies(to: e.shape) else { throw bad("has shape \(e.shape), which layout \(e.layout) does not apply to") }
            guard let elements = layout.storedElements(e.shape, limit: fileSize) else {
                throw bad("has shape \(e.shape), more than the \(fileSize)-byte file can hold")
            }
            guard let bytes = CheckedSize.product(elements, e.dtype.size, limit: fileSize) else {
                throw bad("has shape \(e.shape), more than the \(fileSize)-byte file can hold")
            }
            guard e.bytes == bytes, e.offset >= 0, e.offset % PackedFormat.alignment == 0,
                  e.offset <= fileSize, e.bytes <= fileSize - e.offset else {
                throw bad("lies outside the file or has a bad size")
            }
            guard index[e.name] == nil else { throw MoVQError.corruptFile(path: path, reason: "duplicate tensor '\(e.name)'") }
            index[e.name] = e
        }
        // int8 tensors need their scales: f32, one per output channel (s8 layouts: a scale and a row sum per point and
        // output channel), finite; s8 row sums are integers a row of int8 values can have.
        for e in header.tensors where e.dtype == .i8 || e.dtype == .i16 {
            let layout = TensorLayout(rawValue: e.layout)!, expected = layout.scaleShape(e.shape)
            guard let sname = e.scales, let se = index[sname], se.dtype == .f32, se.shape == expected else {
                throw MoVQError.corruptFile(path: path, reason: "\(e.dtype == .i8 ? "int8" : "int16") tensor '\(e.name)' lacks an f32 scale tensor of shape \(expected)")
            }
            let values = try checkedBytes(se).bindMemory(to: Float.self)
            let scaleCount = expected.count == 2 ? expected[1] : values.count
            guard values[..<scaleCount].allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw MoVQError.corruptFile(path: path, reason: "int8 scales '\(sname)' hold a negative, NaN or infinite value")
            }
            if expected.count == 2 && e.shape[1] > WinogradByteWeights.maxInputs {
                throw MoVQError.corruptFile(path: path, reason: "s8 tensor '\(e.name)' has \(e.shape[1]) input channels; 8-bit sums hold at most \(WinogradByteWeights.maxInputs)")
            }
            let largestSum = Float(127 * e.shape[1])
            guard values[scaleCount...].allSatisfy({ abs($0) <= largestSum && $0.rounded() == $0 }) else {
                throw MoVQError.corruptFile(path: path, reason: "int8 row sums '\(sname)' hold a value no row of int8 weights sums to")
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

    /// Raw stored bytes of a tensor (not checked against its CRC).
    public func rawBytes(_ e: PackedTensorEntry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: map.bytes[e.offset..<(e.offset + e.bytes)])
    }

    /// The stored bytes of a tensor, its CRC-32 checked first when verifying.
    private func checkedBytes(_ e: PackedTensorEntry) throws -> UnsafeRawBufferPointer {
        let raw = rawBytes(e)
        guard !verifying || matchesChecksum(e) else { throw checksumMismatch(e) }
        return raw
    }

    private func matchesChecksum(_ e: PackedTensorEntry) -> Bool { CRC32.update(0, rawBytes(e)) == e.crc32 }

    private func checksumMismatch(_ e: PackedTensorEntry) -> MoVQError {
        .corruptFile(path: path, reason: "checksum mismatch in tensor '\(e.name)'")
    }

    /// Checks every tensor's CRC-32 on all cores (what opening with
    /// `verifyChecksums` defers to each tensor's first read); throws for the
    /// first mismatch in table order.
    public func verifyAllChecksums() throws {
        let tensors = header.tensors
        let matches = UnsafeMutableBufferPointer<Bool>.allocate(capacity: tensors.count)
        matches.initialize(repeating: false)
        defer { matches.deallocate() }
        let slots = SendableBools(matches)
        DispatchQueue.concurrentPerform(iterations: tensors.count) { t in
            let e = tensors[t]
            slots.base[t] = matchesChecksum(e)
            map.releaseResidentPages(e.offset..<(e.offset + e.bytes))  // verified: no need to keep it in memory
        }
        if let bad = matches.firstIndex(of: false) { throw checksumMismatch(tensors[bad]) }
    }

    /// Calls `body` with the tensor as fp32 values of the expected shape:
    /// the mapped bytes themselves for fp32 tensors, a temporary widened copy
    /// for fp16 and int8 ones (int8: `q * scale` per output channel), which
    /// is freed when `body` returns, so nothing widened stays resident; the
    /// tensor's mapped pages are released afterwards too (they fault back
    /// in from the page cache if read again).
    public func withFloats<R>(_ name: String, shape: [Int], _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        try withWeights(name, shape: shape) { try $0.withFloats(body) }
    }

    /// Calls `body` with the tensor as stored: fp32 values in place (fp16
    /// widened), int8 values in place with their scales, or, when the file
    /// stores it in `kernelLayout`, those packed values in place (`.packed`;
    /// their pages stay mapped: the operator reads them from the file).
    /// Plain reads release the mapped pages afterwards, as `withFloats` does.
    /// Another kernel layout is unpacked to plain values if it can be
    /// (`TensorLayout.isInvertible`); otherwise this throws.
    package func withWeights<R>(_ name: String, shape: [Int], kernelLayout: TensorLayout = .plain,
                                _ body: (StoredWeights) throws -> R) throws -> R {
        guard let e = index[name] else { throw MoVQError.missingTensor(name) }
        guard e.shape == shape else { throw MoVQError.shapeMismatch(tensor: name, expected: shape, found: e.shape) }
        let raw = try checkedBytes(e)
        let layout = TensorLayout(rawValue: e.layout)!  // validated at open
        if layout.dtype == .i16 {
            let words = raw.bindMemory(to: Int32.self), scales = int8Scales(of: name)!  // validated at open
            if layout == kernelLayout.int16Form { return try body(.packedInt16(words, scales: scales, layout, owner: self)) }
            return try layout.unpackInt16(words, scales: scales, shape: shape).withUnsafeBufferPointer { try body(.floats($0)) }
        }
        if layout.dtype == .i8 && layout != .plain {
            guard layout == kernelLayout.byteForm else {
                throw MoVQError.unsupported("\(path): tensor '\(name)' is stored in the \(e.layout) kernel layout, which cannot be read back as plain values (the reference backend and re-conversion need them): convert the checkpoint with --layout plain")
            }
            return try body(.packedS8(raw.bindMemory(to: Int32.self), scales: int8Scales(of: name)!, layout, owner: self))  // validated at open
        }
        if layout != .plain {
            let stored = raw.bindMemory(to: Float.self)  // the other kernel layouts are f32 (validated at open)
            if layout == kernelLayout { return try body(.packed(stored, layout, owner: self)) }
            guard let plain = layout.unpack(stored, shape: shape) else {
                throw MoVQError.unsupported("\(path): tensor '\(name)' is stored in the \(e.layout) kernel layout, which cannot be read back as plain values (the reference backend and re-conversion need them): convert the checkpoint with --layout plain")
            }
            return try plain.withUnsafeBufferPointer { try body(.floats($0)) }
        }
        defer { map.releaseResidentPages(e.offset..<(e.offset + e.bytes)) }  // read once: the pages may go
        switch e.dtype {
        case .f32: return try body(.floats(raw.bindMemory(to: Float.self)))
        case .i8: return try body(.int8(raw.bindMemory(to: Int8.self), scales: int8Scales(of: name)!))  // scales validated at open
        default: return try decodeFloats(raw, dtype: e.dtype, count: e.elementCount).withUnsafeBufferPointer { try body(.floats($0)) }
        }
    }

    /// The tensor as an fp32 array of the expected shape (a copy).
    public func floatArray(_ name: String, shape: [Int]) throws -> [Float] {
        try withFloats(name, shape: shape) { Array($0) }
    }

    /// The per-output-channel scales of an int8-stored tensor, or of int8
    /// weights stored in an int16 layout (nil for fp32/fp16).
    public func int8Scales(of name: String) -> UnsafeBufferPointer<Float>? {
        guard let e = index[name], e.dtype == .i8 || e.dtype == .i16, let sname = e.scales, let se = index[sname] else { return nil }  // validated at open
        return rawBytes(se).bindMemory(to: Float.self)
    }
}

/// One result slot per tensor, written by concurrent workers (each its own index).
private struct SendableBools: @unchecked Sendable {
    let base: UnsafeMutableBufferPointer<Bool>
    init(_ base: UnsafeMutableBufferPointer<Bool>) { self.base = base }
}
