import CRC32Fold

/// CRC-32 (IEEE 802.3, the zlib/PNG polynomial): carry-less multiplication
/// folding (`movq_crc32_fold`, C, PCLMULQDQ) over whole 16-byte blocks of
/// inputs of at least 64 bytes where the CPU has it, slice-by-16 (16 bytes
/// per step through 16 lookup tables) for the rest and on other CPUs.
public enum CRC32 {
    /// Whether `movq_crc32_fold` runs here (CPUID, once).
    static let folding = movq_crc32_fold_available() != 0
    /// `tables[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
    nonisolated(unsafe) static let tables: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 16 * 256)  // lives as long as the process
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<16 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return UnsafePointer(t)
    }()

    /// Continues a CRC over `bytes` (start with 0).
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard var p = bytes.baseAddress else { return crc }
        var c = ~crc, n = bytes.count
        if folding && n >= 64 {
            let whole = n & ~15
            c = movq_crc32_fold(c, p.assumingMemoryBound(to: UInt8.self), whole)
            p += whole; n -= whole
        }
        return ~sliced(c, p, n)
    }

    /// The table-driven loop over `n` bytes at `p` from register `c` (the inverted CRC).
    static func sliced(_ c: UInt32, _ p: UnsafeRawPointer, _ n: Int) -> UInt32 {
        var c = c, p = p, n = n
        let t = tables
        @inline(__always) func at(_ table: Int, _ byte: UInt32) -> UInt32 { t[table &* 256 &+ Int(byte & 0xFF)] }
        while n >= 16 {
            let a = c ^ UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
            let b = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            let d = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            let e = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
            c = at(15, a) ^ at(14, a >> 8) ^ at(13, a >> 16) ^ at(12, a >> 24)
                ^ at(11, b) ^ at(10, b >> 8) ^ at(9, b >> 16) ^ at(8, b >> 24)
                ^ at(7, d) ^ at(6, d >> 8) ^ at(5, d >> 16) ^ at(4, d >> 24)
                ^ at(3, e) ^ at(2, e >> 8) ^ at(1, e >> 16) ^ at(0, e >> 24)
            p += 16; n -= 16
        }
        while n > 0 { c = at(0, c ^ UInt32(p.load(as: UInt8.self))) ^ (c >> 8); p += 1; n -= 1 }
        return c
    }

    /// CRC of a byte array.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }
}
