import Foundation

/// Opens `path` for reading without ever blocking: the file is opened
/// non-blocking and must be a regular file (a FIFO, socket or device would
/// otherwise hang `open` or `read`). Returns the descriptor and the size.
private func openRegularFile(_ path: String) throws -> (fd: Int32, size: Int) {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else {
        let reason = errno == ENOENT ? "no such file" : "cannot open (\(String(cString: strerror(errno))))"
        throw MoVQError.io(path: path, reason: reason)
    }
    var st = stat()
    guard fstat(fd, &st) == 0 else { close(fd); throw MoVQError.io(path: path, reason: "cannot stat") }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        close(fd)
        let kind = (st.st_mode & S_IFMT) == S_IFDIR ? "a folder" : "not a regular file (a pipe, socket or device)"
        throw MoVQError.io(path: path, reason: "is \(kind)")
    }
    return (fd, Int(st.st_size))
}

/// Reads a whole regular file of at most `limit` bytes, with errors that
/// name the path. Never blocks on a FIFO.
package func readFile(_ path: String, limit: Int = 1 << 30) throws -> Data {
    let (fd, size) = try openRegularFile(path)
    defer { close(fd) }
    guard size <= limit else { throw MoVQError.io(path: path, reason: "is \(size) bytes, more than the \(limit) this reader accepts") }
    var data = Data(count: size)
    var done = 0
    try data.withUnsafeMutableBytes { (buf: UnsafeMutableRawBufferPointer) in
        while done < size {
            let n = read(fd, buf.baseAddress! + done, size - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw MoVQError.io(path: path, reason: "cannot read (\(n < 0 ? String(cString: strerror(errno)) : "file shrank"))") }
            done += n
        }
    }
    return data
}

/// Writes `data` to `path` atomically: a temporary file in the same folder,
/// then a rename, so a failure never leaves a half-written output.
public func writeFileAtomically(_ path: String, _ data: Data) throws {
    try writeFilesAtomically([(path, data)])
}

/// Writes a set of outputs all-or-nothing: every file goes to a temporary
/// name in its destination folder first, and only when all are written are
/// they renamed into place. On any failure the temporaries are removed, and
/// so is every destination this call had already created; nothing new is
/// left behind. (A destination that existed before and was already replaced
/// stays replaced: rename(2) cannot be undone.)
public func writeFilesAtomically(_ outputs: [(path: String, data: Data)]) throws {
    var seen = Set<String>()
    for (path, _) in outputs {
        guard seen.insert(URL(fileURLWithPath: path).standardizedFileURL.path).inserted else {
            throw MoVQError.io(path: path, reason: "named twice in one output set")
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw MoVQError.io(path: path, reason: "is a folder, cannot write a file there")
        }
    }
    var temporaries: [String] = []
    func removeTemporaries() { for t in temporaries { unlink(t) } }
    for (path, data) in outputs {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do { try data.write(to: URL(fileURLWithPath: tmp)) } catch {
            unlink(tmp)
            removeTemporaries()
            throw MoVQError.io(path: path, reason: "cannot write (\(error.localizedDescription))")
        }
        temporaries.append(tmp)
    }
    var created: [String] = []
    for (i, (path, _)) in outputs.enumerated() {
        let existed = FileManager.default.fileExists(atPath: path)
        // rename(2) replaces the destination atomically.
        guard rename(temporaries[i], path) == 0 else {
            let reason = String(cString: strerror(errno))
            for t in temporaries[i...] { unlink(t) }
            for c in created { unlink(c) }
            throw MoVQError.io(path: path, reason: "cannot rename into place (\(reason))")
        }
        if !existed { created.append(path) }
    }
}

/// A read-only memory map of a whole regular file; weights point into it
/// directly. Opening never blocks (FIFOs and devices are refused).
package final class MappedFile: @unchecked Sendable {
    package let path: String
    package let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    package init(path: String) throws {
        self.path = path
        let (fd, size) = try openRegularFile(path)
        defer { close(fd) }
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
    package func releaseResidentPages() {
        if mapped, let base = bytes.baseAddress { madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, Int32(MADV_DONTNEED)) }
    }

    /// `releaseResidentPages` for the whole pages inside `range` (bytes):
    /// dropped after a tensor has been read, so a model being packed never
    /// holds the mapped file and the packed copies in memory at once.
    package func releaseResidentPages(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard mapped, let base = bytes.baseAddress, page > 0 else { return }
        let lo = (range.lowerBound + page - 1) / page * page, hi = min(bytes.count, range.upperBound) / page * page
        if lo < hi { madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, Int32(MADV_DONTNEED)) }
    }

    deinit {
        if mapped, let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Bounds-checked little-endian reader over raw bytes. Every read that would
/// pass the end throws `corruptFile` instead of crashing.
package struct ByteReader {
    package let bytes: UnsafeRawBufferPointer
    package let path: String
    package var offset: Int = 0

    package init(_ bytes: UnsafeRawBufferPointer, path: String, offset: Int = 0) {
        self.bytes = bytes; self.path = path; self.offset = offset
    }

    package var remaining: Int { bytes.count - offset }

    package func need(_ n: Int, _ what: String) throws {
        if n < 0 || offset < 0 || offset > bytes.count || n > remaining {
            throw MoVQError.corruptFile(path: path, reason: "\(what) needs \(n) bytes at offset \(offset), \(max(0, remaining)) left")
        }
    }

    /// Moves the read position by `n` bytes, which must stay inside the data.
    package mutating func skip(_ n: Int, _ what: String) throws {
        try need(n, what); offset += n
    }

    package mutating func u8(_ what: String = "byte") throws -> UInt8 {
        try need(1, what); defer { offset += 1 }; return bytes[offset]
    }
    package mutating func u16(_ what: String = "u16") throws -> UInt16 {
        try need(2, what); defer { offset += 2 }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }
    package mutating func u32(_ what: String = "u32") throws -> UInt32 {
        try need(4, what); defer { offset += 4 }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
    package mutating func u64(_ what: String = "u64") throws -> UInt64 {
        let lo = try u32(what), hi = try u32(what)
        return UInt64(lo) | UInt64(hi) << 32
    }
    package mutating func bytes(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try need(n, what); defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }
}

extension Data {
    package mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        var le = v.littleEndian
        Swift.withUnsafeBytes(of: &le) { append(contentsOf: $0) }
    }
}
