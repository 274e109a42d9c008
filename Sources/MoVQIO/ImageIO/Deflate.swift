/// DEFLATE compressor (RFC 1951) with the zlib wrapper (RFC 1950), for PNG.
///
/// LZ77 over a 32 KiB window with hash chains and lazy matching (zlib's
/// level-9 search: chains up to 1024 candidates, lazy evaluation of every
/// match, a quarter of the chain once a match of 32 is found), then one
/// dynamic-Huffman block per 64 Ki symbols with optimal length-limited codes
/// (package-merge). On the demo outputs this is smaller than zlib level 6
/// (tested). `Inflate` reads everything it writes (tested).
enum Deflate {
    /// A zlib stream of `data`. `filtered` is zlib's Z_FILTERED strategy for
    /// PNG rows after filtering (small values, little repetition): matches of
    /// 5 bytes or fewer are coded as literals, which Huffman codes better.
    static func zlib(_ data: [UInt8], filtered: Bool = false) -> [UInt8] {
        var w = BitWriter()
        w.bytes = [0x78, 0x9C]  // deflate, 32K window, default level
        let symbols = lz77(data, shortestMatch: filtered ? 6 : minMatch)
        if symbols.isEmpty {
            writeBlock([], last: true, &w)
        } else {
            var start = 0
            while start < symbols.count {
                let end = min(symbols.count, start + blockSymbols)
                writeBlock(symbols[start..<end], last: end == symbols.count, &w)
                start = end
            }
        }
        w.flush()
        let a = Inflate.adler32(data)
        w.bytes += [UInt8(a >> 24), UInt8(a >> 16 & 0xFF), UInt8(a >> 8 & 0xFF), UInt8(a & 0xFF)]
        return w.bytes
    }

    static let blockSymbols = 1 << 16
    static let window = 1 << 15, minMatch = 3, maxMatch = 258
    static let maxChain = 1024, lazyBelow = 258, goodLength = 32, niceLength = 258

    /// A literal (`length == 0`, `value` = byte) or a match (`length` 3...258, `value` = distance).
    struct Symbol { var length: UInt16; var value: UInt16 }

    /// Greedy-with-lazy-evaluation LZ77, as zlib's deflate_slow.
    static func lz77(_ data: [UInt8], shortestMatch: Int = minMatch) -> [Symbol] {
        let n = data.count
        var out: [Symbol] = []
        out.reserveCapacity(n / 2)
        guard n >= minMatch else { return data.map { Symbol(length: 0, value: UInt16($0)) } }
        let hashBits = 16, hashSize = 1 << hashBits
        var head = [Int32](repeating: -1, count: hashSize)
        var prev = [Int32](repeating: -1, count: window)
        func hash(_ i: Int) -> Int {
            // Multiplicative hash of the 3 bytes (few collisions, so the chain limit is spent on real candidates).
            Int(((UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16) &* 2_654_435_761) >> UInt32(32 - hashBits))
        }
        func insert(_ i: Int) {
            guard i + minMatch <= n else { return }
            let h = hash(i)
            prev[i & (window - 1)] = head[h]
            head[h] = Int32(i)
        }
        /// Longest match at `i` better than `atLeast`, as (length, distance).
        func longest(_ i: Int, atLeast: Int) -> (Int, Int) {
            let limit = min(maxMatch, n - i)
            guard i + minMatch <= n, atLeast < limit else { return (0, 0) }
            var best = atLeast, dist = 0
            var chain = atLeast >= goodLength ? maxChain / 4 : maxChain
            var cand = Int(head[hash(i)])
            while cand >= 0 && i - cand <= window && chain > 0 {
                if data[cand + best] == data[i + best] || best == 0 {
                    var l = 0
                    while l < limit && data[cand + l] == data[i + l] { l += 1 }
                    if l > best { best = l; dist = i - cand; if l >= niceLength || l == limit { break } }
                }
                let p = Int(prev[cand & (window - 1)])
                if p >= cand { break }  // the slot was reused by a newer position
                cand = p
                chain -= 1
            }
            // Matches too short to pay (or 3 bytes from far away, zlib's TOO_FAR) count as none.
            guard dist > 0, best >= shortestMatch, !(best == minMatch && dist > 4096) else { return (0, 0) }
            return (best, dist)
        }
        var i = 0
        var pending: (length: Int, distance: Int)? = nil  // match found at i - 1, waiting for a lazy check
        while i < n {
            let (len, dist) = longest(i, atLeast: pending.map { $0.length } ?? (minMatch - 1))
            if let p = pending {
                if len > p.length {
                    // The match at i is longer: emit the byte at i - 1 as a literal, keep this one pending.
                    out.append(Symbol(length: 0, value: UInt16(data[i - 1])))
                    pending = (len, dist)
                    insert(i); i += 1
                } else {
                    // Emit the pending match, which began at i - 1 (i is already inserted).
                    out.append(Symbol(length: UInt16(p.length), value: UInt16(p.distance)))
                    let end = i - 1 + p.length
                    insert(i)
                    for k in (i + 1)..<end { insert(k) }
                    i = end
                    pending = nil
                }
            } else if len >= minMatch {
                if len >= lazyBelow {
                    out.append(Symbol(length: UInt16(len), value: UInt16(dist)))
                    for k in i..<(i + len) { insert(k) }
                    i += len
                } else {
                    pending = (len, dist)
                    insert(i); i += 1
                }
            } else {
                out.append(Symbol(length: 0, value: UInt16(data[i])))
                insert(i); i += 1
            }
        }
        if let p = pending { out.append(Symbol(length: UInt16(p.length), value: UInt16(p.distance))) }
        return out
    }

    // MARK: Huffman block

    /// Length symbol (257...285) for each match length 3...258.
    static let lengthCode: [Int] = (0...258).map { l in l < 3 ? 0 : 257 + (DeflateTables.lengthBase.lastIndex { $0 <= l } ?? 0) }

    static func distanceCode(_ d: Int) -> Int { DeflateTables.distanceBase.lastIndex { $0 <= d } ?? 0 }

    static func writeBlock(_ symbols: ArraySlice<Symbol>, last: Bool, _ w: inout BitWriter) {
        var litFreq = [Int](repeating: 0, count: 286), distFreq = [Int](repeating: 0, count: 30)
        for s in symbols {
            if s.length == 0 { litFreq[Int(s.value)] += 1 } else {
                litFreq[lengthCode[Int(s.length)]] += 1
                distFreq[distanceCode(Int(s.value))] += 1
            }
        }
        litFreq[256] = 1
        if distFreq.allSatisfy({ $0 == 0 }) { distFreq[0] = 1 }  // at least one distance code
        let litLengths = codeLengths(litFreq, limit: 15), distLengths = codeLengths(distFreq, limit: 15)
        let nlit = max(257, (litLengths.lastIndex { $0 > 0 } ?? 0) + 1), ndist = max(1, (distLengths.lastIndex { $0 > 0 } ?? 0) + 1)
        // Run-length code the two length tables together (symbols 16, 17, 18).
        let all = Array(litLengths[0..<nlit]) + Array(distLengths[0..<ndist])
        var rle: [(symbol: Int, extra: Int, bits: Int)] = []
        var i = 0
        while i < all.count {
            let v = all[i]
            var run = 1
            while i + run < all.count && all[i + run] == v { run += 1 }
            var left = run
            if v == 0 {
                while left >= 11 { let k = min(138, left); rle.append((18, k - 11, 7)); left -= k }
                if left >= 3 { rle.append((17, left - 3, 3)); left = 0 }
            } else {
                rle.append((v, 0, 0)); left -= 1
                while left >= 3 { let k = min(6, left); rle.append((16, k - 3, 2)); left -= k }
            }
            for _ in 0..<left { rle.append((v, 0, 0)) }
            i += run
        }
        var clFreq = [Int](repeating: 0, count: 19)
        for r in rle { clFreq[r.symbol] += 1 }
        let clLengths = codeLengths(clFreq, limit: 7)
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        let nclen = max(4, (order.lastIndex { clLengths[$0] > 0 } ?? 0) + 1)
        w.write(last ? 1 : 0, 1)
        w.write(2, 2)
        w.write(nlit - 257, 5); w.write(ndist - 1, 5); w.write(nclen - 4, 4)
        for k in 0..<nclen { w.write(clLengths[order[k]], 3) }
        let clCodes = canonicalCodes(clLengths)
        for r in rle {
            w.writeCode(clCodes[r.symbol], clLengths[r.symbol])
            if r.bits > 0 { w.write(r.extra, r.bits) }
        }
        let litCodes = canonicalCodes(litLengths), distCodes = canonicalCodes(distLengths)
        for s in symbols {
            if s.length == 0 {
                w.writeCode(litCodes[Int(s.value)], litLengths[Int(s.value)])
            } else {
                let l = Int(s.length), lc = lengthCode[l]
                w.writeCode(litCodes[lc], litLengths[lc])
                if DeflateTables.lengthExtra[lc - 257] > 0 { w.write(l - DeflateTables.lengthBase[lc - 257], DeflateTables.lengthExtra[lc - 257]) }
                let d = Int(s.value), dc = distanceCode(d)
                w.writeCode(distCodes[dc], distLengths[dc])
                if DeflateTables.distanceExtra[dc] > 0 { w.write(d - DeflateTables.distanceBase[dc], DeflateTables.distanceExtra[dc]) }
            }
        }
        w.writeCode(litCodes[256], litLengths[256])
    }

    /// Optimal code lengths of at most `limit` bits for `freq` (package-merge;
    /// unused symbols get 0; a single used symbol gets length 1).
    static func codeLengths(_ freq: [Int], limit: Int) -> [Int] {
        let used = freq.indices.filter { freq[$0] > 0 }
        var lengths = [Int](repeating: 0, count: freq.count)
        if used.count == 1 { lengths[used[0]] = 1; return lengths }
        if used.isEmpty { return lengths }
        // Items are (weight, symbols it covers); each level merges pairs of the previous level with the leaves.
        let leaves = used.map { (weight: freq[$0], symbols: [$0]) }.sorted { $0.weight < $1.weight }
        var level = leaves
        for _ in 1..<limit {
            var packages: [(weight: Int, symbols: [Int])] = []
            var k = 0
            while k + 1 < level.count {
                packages.append((level[k].weight + level[k + 1].weight, level[k].symbols + level[k + 1].symbols))
                k += 2
            }
            level = merge(leaves, packages)
        }
        // The first 2n - 2 items of the last level: each appearance of a symbol adds one bit.
        for item in level.prefix(2 * used.count - 2) { for s in item.symbols { lengths[s] += 1 } }
        return lengths
    }

    static func merge(_ a: [(weight: Int, symbols: [Int])], _ b: [(weight: Int, symbols: [Int])]) -> [(weight: Int, symbols: [Int])] {
        var out: [(weight: Int, symbols: [Int])] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if j >= b.count || (i < a.count && a[i].weight <= b[j].weight) { out.append(a[i]); i += 1 } else { out.append(b[j]); j += 1 }
        }
        return out
    }

    /// Canonical Huffman codes (RFC 1951 3.2.2) for `lengths`.
    static func canonicalCodes(_ lengths: [Int]) -> [Int] {
        var count = [Int](repeating: 0, count: 16)
        for l in lengths where l > 0 { count[l] += 1 }
        var next = [Int](repeating: 0, count: 16)
        var code = 0
        for bits in 1..<16 { code = (code + count[bits - 1]) << 1; next[bits] = code }
        return lengths.map { l in
            guard l > 0 else { return 0 }
            defer { next[l] += 1 }
            return next[l]
        }
    }

    /// LSB-first bit packing; Huffman codes go most significant bit first.
    struct BitWriter {
        var bytes: [UInt8] = []
        var buffer: UInt64 = 0, count = 0

        mutating func write(_ value: Int, _ bits: Int) {
            buffer |= UInt64(value) << UInt64(count)
            count += bits
            while count >= 8 { bytes.append(UInt8(buffer & 0xFF)); buffer >>= 8; count -= 8 }
        }

        mutating func writeCode(_ code: Int, _ length: Int) {
            var reversed = 0
            for b in 0..<length { reversed |= (code >> b & 1) << (length - 1 - b) }
            write(reversed, length)
        }

        mutating func flush() {
            if count > 0 { bytes.append(UInt8(buffer & 0xFF)); buffer = 0; count = 0 }
        }
    }
}
