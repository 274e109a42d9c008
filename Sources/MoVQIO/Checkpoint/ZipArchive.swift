/// Minimal reader for uncompressed ("stored") zip archives, the container
/// `torch.save` writes. Supports zip64 (archives past 4 GiB or 65,535
/// entries) and checks every entry's CRC-32.
struct ZipArchive {
    struct Entry { var name: String; var dataOffset: Int; var size: Int }

    let bytes: UnsafeRawBufferPointer
    let path: String
    private(set) var entries: [String: Entry] = [:]
    private(set) var names: [String] = []

    init(bytes: UnsafeRawBufferPointer, path: String) throws {
        self.bytes = bytes; self.path = path
        func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: why) }
        // End of central directory: last occurrence of PK\5\6 within the tail.
        let n = bytes.count
        guard n >= 22 else { throw bad("too small to be a zip archive") }
        var eocd = -1
        var i = n - 22
        while i >= max(0, n - 22 - 65535) {
            if bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 5 && bytes[i + 3] == 6 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw bad("zip end-of-directory record not found") }
        // EOCD: signature, disk, directory disk, entries on this disk, total entries (u16), directory size, offset (u32).
        var r = ByteReader(bytes, path: path, offset: eocd + 10)
        var count = Int(try r.u16("zip entry count"))
        var cdSize = Int(try r.u32("zip directory size"))
        var cdOffset = Int(try r.u32("zip directory offset"))
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // The zip64 locator just before the EOCD: signature, disk, offset of the zip64 EOCD (u64), disks.
            guard eocd >= 20 else { throw bad("zip64 locator missing") }
            var loc = ByteReader(bytes, path: path, offset: eocd - 20)
            guard try loc.u32() == 0x0706_4B50 else { throw bad("zip64 locator missing") }
            try loc.skip(4, "zip64 locator")
            let z64 = try loc.u64("zip64 directory offset")
            guard z64 <= UInt64(eocd - 20) else { throw bad("bad zip64 locator") }
            // Zip64 EOCD: signature, record size (u64), versions (2 x u16), disks (2 x u32),
            // entries on this disk (u64), total entries (u64), directory size (u64), offset (u64).
            var z = ByteReader(bytes, path: path, offset: Int(z64))
            guard try z.u32("zip64 directory") == 0x0606_4B50 else { throw bad("bad zip64 directory signature") }
            try z.skip(28, "zip64 directory")
            let total = try z.u64("zip64 entry count"), size64 = try z.u64("zip64 directory size"), off64 = try z.u64("zip64 directory offset")
            guard total <= UInt64(n / 46), size64 <= UInt64(n), off64 <= UInt64(n) else { throw bad("zip64 directory claims more than the file holds") }
            count = Int(total); cdSize = Int(size64); cdOffset = Int(off64)
        }
        // Each directory entry is at least 46 bytes: a count the file cannot hold is corrupt, not a big allocation.
        guard cdOffset <= n, count <= (n - cdOffset) / 46 else { throw bad("zip directory (\(count) entries at \(cdOffset)) lies past the end of the file") }
        var c = ByteReader(bytes, path: path, offset: cdOffset)
        for _ in 0..<count {
            guard try c.u32("zip directory entry") == 0x0201_4B50 else { throw bad("bad zip directory entry signature") }
            try c.skip(6, "zip directory entry")
            let method = try c.u16()
            try c.skip(4, "zip directory entry")
            let crc = try c.u32("zip entry CRC")
            var compSize = Int(try c.u32()), size = Int(try c.u32())
            let nameLen = Int(try c.u16()), extraLen = Int(try c.u16()), commentLen = Int(try c.u16())
            try c.skip(8, "zip directory entry")
            var localOffset = Int(try c.u32())
            let name = String(decoding: try c.bytes(nameLen, "zip entry name"), as: UTF8.self)
            var extra = ByteReader(try c.bytes(extraLen, "zip extra field"), path: path)
            while extra.remaining >= 4 {
                let tag = try extra.u16(), len = Int(try extra.u16())
                var field = ByteReader(try extra.bytes(len, "zip extra"), path: path)
                if tag == 1 {  // zip64: only the fields that overflowed are present, in this order
                    func wide(_ v: inout Int) throws {
                        guard v == 0xFFFF_FFFF else { return }
                        let w = try field.u64("zip64 extra field")
                        guard w <= UInt64(n) else { throw bad("zip entry '\(name)' claims \(w) bytes") }
                        v = Int(w)
                    }
                    try wide(&size); try wide(&compSize); try wide(&localOffset)
                }
            }
            try c.skip(commentLen, "zip entry comment")
            guard method == 0 else {
                throw MoVQError.unsupported("\(path): zip entry '\(name)' is compressed (method \(method)); torch checkpoints are stored uncompressed")
            }
            guard localOffset >= 0, localOffset < n else { throw bad("bad local header for zip entry '\(name)'") }
            var l = ByteReader(bytes, path: path, offset: localOffset)
            guard try l.u32("zip local header") == 0x0403_4B50 else { throw bad("bad local header for zip entry '\(name)'") }
            try l.skip(22, "zip local header")
            let ln = Int(try l.u16()), le = Int(try l.u16())
            try l.skip(ln, "zip local name"); try l.skip(le, "zip local extra")
            let dataOffset = l.offset
            guard size == compSize, size >= 0, size <= n - dataOffset else {
                throw bad("zip entry '\(name)' extends past the end of the file")
            }
            guard CRC32.update(0, UnsafeRawBufferPointer(rebasing: bytes[dataOffset..<(dataOffset + size)])) == crc else {
                throw bad("CRC mismatch in zip entry '\(name)'")
            }
            guard entries[name] == nil else { throw bad("zip entry '\(name)' appears twice") }
            entries[name] = Entry(name: name, dataOffset: dataOffset, size: size)
            names.append(name)
        }
    }

    func data(_ name: String) -> UnsafeRawBufferPointer? {
        guard let e = entries[name] else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[e.dataOffset..<(e.dataOffset + e.size)])
    }
}
