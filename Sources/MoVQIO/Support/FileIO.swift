import Foundation

/// Reads a whole file, with errors that name the path.
func readFile(_ path: String) throws -> Data {
    guard FileManager.default.fileExists(atPath: path) else {
        throw MoVQError.io(path: path, reason: "no such file")
    }
    do { return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
        throw MoVQError.io(path: path, reason: "cannot read (\(error.localizedDescription))")
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same folder,
/// then a rename, so a failure never leaves a half-written output.
public func writeFileAtomically(_ path: String, _ data: Data) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent()
        .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    do {
        try data.write(to: tmp)
        // rename(2) replaces the destination atomically.
        guard rename(tmp.path, path) == 0 else {
            throw MoVQError.io(path: path, reason: "cannot rename into place (\(String(cString: strerror(errno))))")
        }
    } catch let e as MoVQError {
        try? FileManager.default.removeItem(at: tmp)
        throw e
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw MoVQError.io(path: path, reason: "cannot write (\(error.localizedDescription))")
    }
}

/// A read-only memory map of a whole file; weights point into it directly.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw MoVQError.io(path: path, reason: "no such file or not readable") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw MoVQError.io(path: path, reason: "cannot stat") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw MoVQError.io(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0); mapped = false; return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw MoVQError.io(path: path, reason: "mmap failed")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        mapped = true
    }

    /// Tells the kernel the mapped pages may be dropped (they are clean and
    /// file-backed, so later reads fault them back in). Used after weights
    /// have been packed into their own buffers.
    public func releaseResidentPages() {
        if mapped, let base = bytes.baseAddress { madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, Int32(MADV_DONTNEED)) }
    }

    deinit {
        if mapped, let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Bounds-checked little-endian reader over raw bytes. Every read that would
/// pass the end throws `corruptFile` instead of crashing.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset: Int = 0

    init(_ bytes: UnsafeRawBufferPointer, path: String, offset: Int = 0) {
        self.bytes = bytes; self.path = path; self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    func need(_ n: Int, _ what: String) throws {
        if n < 0 || n > remaining {
            throw MoVQError.corruptFile(path: path, reason: "\(what) needs \(n) bytes at offset \(offset), \(max(0, remaining)) left")
        }
    }

    mutating func u8(_ what: String = "byte") throws -> UInt8 {
        try need(1, what); defer { offset += 1 }; return bytes[offset]
    }
    mutating func u16(_ what: String = "u16") throws -> UInt16 {
        try need(2, what); defer { offset += 2 }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }
    mutating func u32(_ what: String = "u32") throws -> UInt32 {
        try need(4, what); defer { offset += 4 }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
    mutating func u64(_ what: String = "u64") throws -> UInt64 {
        let lo = try u32(what), hi = try u32(what)
        return UInt64(lo) | UInt64(hi) << 32
    }
    mutating func bytes(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try need(n, what); defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }
}

extension Data {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        var le = v.littleEndian
        Swift.withUnsafeBytes(of: &le) { append(contentsOf: $0) }
    }
}
