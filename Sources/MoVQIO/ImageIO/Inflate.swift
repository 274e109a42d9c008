/// DEFLATE decoder (RFC 1951) with the zlib wrapper (RFC 1950), for PNG.
/// Every malformed stream throws; output size is capped by the caller.
struct Inflate {
    enum Failure: Error { case bad(String) }

    private let src: [UInt8]
    private var pos = 0
    private var bitBuf: UInt32 = 0
    private var bitCount = 0
    private var out: [UInt8] = []
    private let limit: Int

    private init(_ src: [UInt8], limit: Int) { self.src = src; self.limit = limit }

    /// Decompresses a zlib stream, refusing to produce more than `limit` bytes.
    static func zlib(_ data: [UInt8], limit: Int) throws -> [UInt8] {
        guard data.count >= 2, (UInt16(data[0]) << 8 | UInt16(data[1])) % 31 == 0, data[0] & 0x0F == 8 else {
            throw Failure.bad("bad zlib header")
        }
        if data[1] & 0x20 != 0 { throw Failure.bad("zlib preset dictionary") }
        var s = Inflate(data, limit: limit)
        s.pos = 2
        try s.run()
        // The Adler-32 of the output follows the last block, big-endian.
        guard s.pos + 4 <= data.count else { throw Failure.bad("missing Adler-32 checksum") }
        let stored = UInt32(data[s.pos]) << 24 | UInt32(data[s.pos + 1]) << 16 | UInt32(data[s.pos + 2]) << 8 | UInt32(data[s.pos + 3])
        guard adler32(s.out) == stored else { throw Failure.bad("Adler-32 checksum mismatch") }
        return s.out
    }

    /// Adler-32 (RFC 1950) of `bytes`.
    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var i = 0
        while i < bytes.count {
            // 5552 bytes is the most that cannot overflow b before the modulo.
            let end = min(bytes.count, i + 5552)
            while i < end { a += UInt32(bytes[i]); b += a; i += 1 }
            a %= 65521; b %= 65521
        }
        return b << 16 | a
    }

    private mutating func bits(_ n: Int) throws -> Int {
        while bitCount < n {
            guard pos < src.count else { throw Failure.bad("unexpected end of compressed data") }
            bitBuf |= UInt32(src[pos]) << UInt32(bitCount); pos += 1; bitCount += 8
        }
        let v = Int(bitBuf & ((1 << UInt32(n)) - 1))
        bitBuf >>= UInt32(n); bitCount -= n
        return v
    }

    /// Canonical Huffman table: counts per length and symbols by code order.
    private struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int] = []
        init(lengths: [Int]) throws {
            for l in lengths { counts[l] += 1 }
            counts[0] = 0
            var left = 1
            for len in 1..<16 { left <<= 1; left -= counts[len]; if left < 0 { throw Failure.bad("over-subscribed Huffman code") } }
            var offs = [Int](repeating: 0, count: 16)
            for len in 1..<15 { offs[len + 1] = offs[len] + counts[len] }
            symbols = [Int](repeating: 0, count: lengths.count)
            for (sym, l) in lengths.enumerated() where l != 0 { symbols[offs[l]] = sym; offs[l] += 1 }
        }
    }

    private mutating func decode(_ h: Huffman) throws -> Int {
        var code = 0, first = 0, index = 0
        for len in 1..<16 {
            code |= try bits(1)
            let count = h.counts[len]
            if code - count < first { return h.symbols[index + (code - first)] }
            index += count; first += count; first <<= 1; code <<= 1
        }
        throw Failure.bad("invalid Huffman code")
    }


    private mutating func run() throws {
        var last = 0
        repeat {
            last = try bits(1)
            switch try bits(2) {
            case 0:
                bitBuf = 0; bitCount = 0
                guard pos + 4 <= src.count else { throw Failure.bad("truncated stored block") }
                let len = Int(src[pos]) | Int(src[pos + 1]) << 8, nlen = Int(src[pos + 2]) | Int(src[pos + 3]) << 8
                guard len == (~nlen & 0xFFFF) else { throw Failure.bad("stored block length check failed") }
                pos += 4
                guard pos + len <= src.count else { throw Failure.bad("truncated stored block") }
                guard out.count + len <= limit else { throw Failure.bad("decompressed data larger than the image") }
                out += src[pos..<(pos + len)]; pos += len
            case 1:
                var l = [Int](repeating: 8, count: 288)
                for i in 144..<256 { l[i] = 9 }
                for i in 256..<280 { l[i] = 7 }
                try codes(try Huffman(lengths: l), try Huffman(lengths: [Int](repeating: 5, count: 30)))
            case 2:
                let nlen = try bits(5) + 257, ndist = try bits(5) + 1, ncode = try bits(4) + 4
                let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
                var cl = [Int](repeating: 0, count: 19)
                for i in 0..<ncode { cl[order[i]] = try bits(3) }
                let clh = try Huffman(lengths: cl)
                var lengths: [Int] = []
                while lengths.count < nlen + ndist {
                    let sym = try decode(clh)
                    switch sym {
                    case 0..<16: lengths.append(sym)
                    case 16:
                        guard let prev = lengths.last else { throw Failure.bad("repeat with no previous length") }
                        lengths += [Int](repeating: prev, count: 3 + (try bits(2)))
                    case 17: lengths += [Int](repeating: 0, count: 3 + (try bits(3)))
                    default: lengths += [Int](repeating: 0, count: 11 + (try bits(7)))
                    }
                }
                guard lengths.count == nlen + ndist else { throw Failure.bad("too many code lengths") }
                try codes(try Huffman(lengths: Array(lengths[0..<nlen])), try Huffman(lengths: Array(lengths[nlen...])))
            default:
                throw Failure.bad("invalid block type")
            }
        } while last == 0
    }

    private mutating func codes(_ lit: Huffman, _ dist: Huffman) throws {
        while true {
            let sym = try decode(lit)
            if sym < 256 {
                guard out.count < limit else { throw Failure.bad("decompressed data larger than the image") }
                out.append(UInt8(sym))
            } else if sym == 256 {
                return
            } else {
                let li = sym - 257
                guard li < 29 else { throw Failure.bad("invalid length symbol") }
                let len = DeflateTables.lengthBase[li] + (try bits(DeflateTables.lengthExtra[li]))
                let di = try decode(dist)
                guard di < 30 else { throw Failure.bad("invalid distance symbol") }
                let d = DeflateTables.distanceBase[di] + (try bits(DeflateTables.distanceExtra[di]))
                guard d <= out.count else { throw Failure.bad("distance before start of data") }
                guard out.count + len <= limit else { throw Failure.bad("decompressed data larger than the image") }
                let start = out.count - d
                for i in 0..<len { out.append(out[start + i]) }
            }
        }
    }
}

/// The length and distance codes of RFC 1951 (3.2.5), shared by `Inflate` and `Deflate`.
enum DeflateTables {
    /// Base match length of length symbols 257...285, and their extra bits.
    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    /// Base distance of distance symbols 0...29, and their extra bits.
    static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
}
