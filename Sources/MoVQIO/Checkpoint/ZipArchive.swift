/// Minimal reader for uncompressed ("stored") zip archives, the container
/// `torch.save` writes. Supports zip64 sizes and offsets.
struct ZipArchive {
    struct Entry { var name: String; var dataOffset: Int; var size: Int }

    let bytes: UnsafeRawBufferPointer
    let path: String
    private(set) var entries: [String: Entry] = [:]
    private(set) var names: [String] = []

    init(bytes: UnsafeRawBufferPointer, path: String) throws {
        self.bytes = bytes; self.path = path
        // End of central directory: last occurrence of PK\5\6 within the tail.
        let n = bytes.count
        guard n >= 22 else { throw MoVQError.corruptFile(path: path, reason: "too small to be a zip archive") }
        var eocd = -1
        var i = n - 22
        while i >= max(0, n - 22 - 65535) {
            if bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 5 && bytes[i + 3] == 6 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw MoVQError.corruptFile(path: path, reason: "zip end-of-directory record not found") }
        var r = ByteReader(bytes, path: path, offset: eocd + 10)
        var count = Int(try r.u16()); _ = try r.u32()
        var cdOffset = Int(try r.u32())
        if (count == 0xFFFF || cdOffset == 0xFFFF_FFFF) && eocd >= 20 {
            // Zip64 locator just before the EOCD points at the zip64 EOCD.
            var loc = ByteReader(bytes, path: path, offset: eocd - 20)
            if try loc.u32() == 0x0706_4B50 {
                _ = try loc.u32()
                let z64 = try loc.u64()
                guard z64 < UInt64(n) else { throw MoVQError.corruptFile(path: path, reason: "bad zip64 locator") }
                var z = ByteReader(bytes, path: path, offset: Int(z64))
                guard try z.u32() == 0x0606_4B50 else { throw MoVQError.corruptFile(path: path, reason: "bad zip64 directory") }
                z.offset += 20
                let c64 = try z.u64(); _ = try z.u64()
                let o64 = try z.u64()
                guard c64 < 10_000_000, o64 < UInt64(n) else { throw MoVQError.corruptFile(path: path, reason: "absurd zip64 directory") }
                count = Int(c64); cdOffset = Int(o64)
            }
        }
        guard cdOffset < n else { throw MoVQError.corruptFile(path: path, reason: "zip directory offset past end of file") }
        var c = ByteReader(bytes, path: path, offset: cdOffset)
        for _ in 0..<count {
            guard try c.u32("zip directory entry") == 0x0201_4B50 else {
                throw MoVQError.corruptFile(path: path, reason: "bad zip directory entry signature")
            }
            c.offset += 6
            let method = try c.u16(); c.offset += 8
            var compSize = Int(try c.u32()); var size = Int(try c.u32())
            let nameLen = Int(try c.u16()), extraLen = Int(try c.u16()), commentLen = Int(try c.u16())
            c.offset += 8
            var localOffset = Int(try c.u32())
            let name = String(decoding: try c.bytes(nameLen, "zip entry name"), as: UTF8.self)
            var extra = ByteReader(try c.bytes(extraLen, "zip extra field"), path: path)
            while extra.remaining >= 4 {
                let tag = try extra.u16(), len = Int(try extra.u16())
                var field = ByteReader(try extra.bytes(len, "zip extra"), path: path)
                if tag == 1 {  // zip64: only the fields that overflowed are present, in order
                    if size == 0xFFFF_FFFF { size = Int(try field.u64()) }
                    if compSize == 0xFFFF_FFFF { compSize = Int(try field.u64()) }
                    if localOffset == 0xFFFF_FFFF { localOffset = Int(try field.u64()) }
                }
            }
            c.offset += commentLen
            guard method == 0 else {
                throw MoVQError.unsupported("\(path): zip entry '\(name)' is compressed (method \(method)); torch checkpoints are stored uncompressed")
            }
            var l = ByteReader(bytes, path: path, offset: localOffset)
            guard localOffset >= 0, localOffset < n, try l.u32("zip local header") == 0x0403_4B50 else {
                throw MoVQError.corruptFile(path: path, reason: "bad local header for zip entry '\(name)'")
            }
            l.offset += 22
            let ln = Int(try l.u16()), le = Int(try l.u16())
            let dataOffset = l.offset + ln + le
            guard size == compSize, size >= 0, dataOffset <= n, size <= n - dataOffset else {
                throw MoVQError.corruptFile(path: path, reason: "zip entry '\(name)' extends past the end of the file")
            }
            entries[name] = Entry(name: name, dataOffset: dataOffset, size: size)
            names.append(name)
        }
    }

    func data(_ name: String) -> UnsafeRawBufferPointer? {
        guard let e = entries[name] else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[e.dataOffset..<(e.dataOffset + e.size)])
    }
}
