import Foundation

/// An 8-bit image, interleaved channels, row-major.
public struct Image8: Sendable, Equatable {
    /// Pixels per row.
    public var width: Int
    /// Rows.
    public var height: Int
    /// 1 (grey), 3 (RGB) or 4 (RGBA).
    public var channels: Int
    /// Row-major interleaved 8-bit samples, `width * height * channels`.
    public var pixels: [UInt8]

    /// An image over `pixels` (`width * height * channels` samples).
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels)
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }
}

/// The size and kind of a PNG image, read from its header alone.
public struct PNGHeader: Sendable, Equatable {
    /// Size in pixels.
    public var width: Int, height: Int
    /// Bits per sample: 8 or 16.
    public var depth: Int
    /// PNG color type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA.
    public var colorType: Int
    /// Samples per stored pixel.
    var samples: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType] ?? 0 }
    /// Channels of the decoded `Image8` (grey, RGB or RGBA).
    public var channels: Int { colorType == 0 ? 1 : (colorType == 4 || colorType == 6) ? 4 : 3 }
}

/// PNG reading (8/16-bit grey, grey+alpha, RGB, RGBA, palette; non-interlaced)
/// and writing (8-bit grey/RGB/RGBA, stored deflate blocks).
///
/// Reading checks every chunk CRC, the chunk order, the zlib Adler-32 and
/// the header's methods, and refuses images above `maxPixels` before
/// allocating anything their size implies.
public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Largest image read by default: 8192 x 8192.
    public static let maxPixels = 1 << 26

    /// Reads a non-interlaced PNG file (8/16-bit grey, grey+alpha, RGB, RGBA or palette) as 8-bit samples, refusing more than `maxPixels` pixels before decoding.
    public static func read(path: String, maxPixels: Int = PNG.maxPixels) throws -> Image8 {
        let data = try readFile(path)
        return try decode([UInt8](data), path: path, maxPixels: maxPixels)
    }

    /// The header of the PNG at `path`. The file is mapped, not read: only
    /// its first page (signature + IHDR) is touched.
    public static func header(path: String) throws -> PNGHeader {
        let map = try MappedFile(path: path)
        return try header(of: UnsafeRawBufferPointer(rebasing: map.bytes.prefix(8 + 25)), path: path)
    }

    /// Parses and checks the signature and the IHDR chunk, which must come first.
    static func header(of bytes: UnsafeRawBufferPointer, path: String) throws -> PNGHeader {
        func bad(_ s: String) -> MoVQError { .corruptFile(path: path, reason: s) }
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
            throw MoVQError.invalidInput("\(path) is not a PNG file")
        }
        var r = ByteReader(bytes, path: path, offset: 8)
        let len = try r.u32("PNG chunk length").byteSwapped
        let typeAndData = try r.bytes(4 + 13, "IHDR chunk")
        let crc = try r.u32("PNG chunk CRC").byteSwapped
        guard len == 13, Array(typeAndData[0..<4]) == Array("IHDR".utf8) else { throw bad("first chunk is not a 13-byte IHDR") }
        guard CRC32.update(0, typeAndData) == crc else { throw bad("PNG chunk CRC mismatch (IHDR)") }
        let b = Array(typeAndData[4...])
        func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        let h = PNGHeader(width: be32(0), height: be32(4), depth: Int(b[8]), colorType: Int(b[9]))
        guard h.width > 0, h.height > 0, h.width < 1 << 31, h.height < 1 << 31 else { throw bad("image size \(h.width)x\(h.height) is invalid") }
        guard h.samples > 0 else { throw bad("invalid color type \(h.colorType)") }
        guard b[10] == 0 else { throw bad("compression method \(b[10]) (PNG defines only 0)") }
        guard b[11] == 0 else { throw bad("filter method \(b[11]) (PNG defines only 0)") }
        guard b[12] == 0 else {
            if b[12] == 1 { throw MoVQError.unsupported("\(path): interlaced PNG") }
            throw bad("interlace method \(b[12]) (PNG defines 0 and 1)")
        }
        guard h.depth == 8 || h.depth == 16 else { throw MoVQError.unsupported("\(path): \(h.depth)-bit PNG (8 and 16 bit are supported)") }
        if h.colorType == 3 && h.depth != 8 { throw MoVQError.unsupported("\(path): palette PNG with \(h.depth)-bit indices") }
        return h
    }

    /// Decodes PNG bytes (as `read`); `path` names the source in errors.
    public static func decode(_ bytes: [UInt8], path: String = "<png>", maxPixels: Int = PNG.maxPixels) throws -> Image8 {
        func bad(_ s: String) -> MoVQError { .corruptFile(path: path, reason: s) }
        let h = try bytes.withUnsafeBytes { try header(of: $0, path: path) }
        guard let pixels = CheckedSize.product(h.width, h.height, limit: maxPixels) else {
            throw MoVQError.invalidInput("\(path): image \(h.width)x\(h.height) has more than the \(maxPixels) pixels this reader accepts")
        }
        let (width, height, depth, colorType) = (h.width, h.height, h.depth, h.colorType)
        var idat: [UInt8] = []
        var palette: [UInt8] = []
        var sawIDAT = false, lastWasIDAT = false, sawEnd = false
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, path: path, offset: 8 + 25)
            while r.remaining > 0 && !sawEnd {
                let len = Int(try r.u32("PNG chunk length").byteSwapped)
                guard len < 1 << 31 else { throw bad("bad chunk length") }
                let typeAndData = try r.bytes(4 + len, "PNG chunk")
                let crc = try r.u32("PNG chunk CRC").byteSwapped
                guard CRC32.update(0, typeAndData) == crc else { throw bad("PNG chunk CRC mismatch") }
                let type = String(decoding: typeAndData[0..<4], as: UTF8.self)
                let body = UnsafeRawBufferPointer(rebasing: typeAndData[4...])
                switch type {
                case "IHDR": throw bad("second IHDR chunk")
                case "PLTE":
                    guard !sawIDAT, palette.isEmpty, len % 3 == 0, len <= 768 else { throw bad("misplaced or bad PLTE chunk") }
                    palette = Array(body)
                case "IDAT":
                    if sawIDAT && !lastWasIDAT { throw bad("IDAT chunks are not consecutive") }
                    sawIDAT = true; idat += body
                case "IEND": sawEnd = true
                default:
                    // Unknown critical chunks (uppercase first letter) cannot be skipped.
                    guard typeAndData[0] & 0x20 != 0 else { throw MoVQError.unsupported("\(path): critical PNG chunk '\(type)'") }
                }
                lastWasIDAT = type == "IDAT"
            }
        }
        guard sawIDAT else { throw bad("no image data (IDAT)") }
        guard sawEnd else { throw bad("missing IEND (truncated?)") }
        if colorType == 3 && palette.isEmpty { throw bad("palette image without PLTE") }
        let bpp = h.samples * depth / 8
        guard let stride = CheckedSize.product(width, bpp), let rawCount = CheckedSize.product(stride + 1, height) else {
            throw MoVQError.invalidInput("\(path): absurd image size \(width)x\(height)")
        }
        var raw: [UInt8]
        do { raw = try Inflate.zlib(idat, limit: rawCount) } catch {
            throw bad("image data does not decompress (\(error))")
        }
        idat = []
        guard raw.count == rawCount else { throw bad("image data has \(raw.count) bytes, expected \(rawCount)") }
        // Unfilter in place: row y's bytes move to y * stride, after the filter byte of each row.
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            guard filter <= 4 else { throw bad("invalid filter type \(filter)") }
            let src = y * (stride + 1) + 1, dst = y * stride
            for i in 0..<stride {
                let x = raw[src + i]
                let a = i >= bpp ? raw[dst + i - bpp] : 0
                let b = y > 0 ? raw[dst - stride + i] : 0
                let c = (i >= bpp && y > 0) ? raw[dst - stride + i - bpp] : 0
                raw[dst + i] = x &+ predict(filter, a, b, c)
            }
        }
        // To 8-bit grey / RGB / RGBA.
        let outChannels = h.channels
        if colorType != 3 && depth == 8 && outChannels == h.samples {  // already in the output layout
            raw.removeLast(raw.count - pixels * outChannels)
            return Image8(width: width, height: height, channels: outChannels, pixels: raw)
        }
        var px = [UInt8](repeating: 0, count: pixels * outChannels)
        let step = depth / 8
        for i in 0..<pixels {
            func s(_ k: Int) -> UInt8 { raw[i * bpp + k * step] }  // high byte for 16-bit
            switch colorType {
            case 0: px[i] = s(0)
            case 2: for k in 0..<3 { px[i * 3 + k] = s(k) }
            case 3:
                let idx = Int(s(0))
                guard idx * 3 + 2 < palette.count else { throw bad("palette index \(idx) out of range") }
                for k in 0..<3 { px[i * 3 + k] = palette[idx * 3 + k] }
            case 4: for k in 0..<3 { px[i * 4 + k] = s(0) }; px[i * 4 + 3] = s(1)
            default: for k in 0..<4 { px[i * 4 + k] = s(k) }
            }
        }
        return Image8(width: width, height: height, channels: outChannels, pixels: px)
    }

    /// A compressed PNG of `img`: each row filtered with the PNG filter that
    /// minimizes the sum of absolute filtered bytes (libpng's heuristic), then
    /// deflated (`Deflate`).
    public static func encode(_ img: Image8) -> Data {
        let colorType: UInt8 = img.channels == 1 ? 0 : img.channels == 3 ? 2 : 6
        let raw = filtered(img)
        var out = Data(signature)
        func chunk(_ type: String, _ body: [UInt8]) {
            let td = Array(type.utf8) + body
            out.appendLE(UInt32(body.count).byteSwapped)
            out.append(contentsOf: td)
            out.appendLE(CRC32.checksum(td).byteSwapped)
        }
        var ihdr = [UInt8]()
        for v in [UInt32(img.width), UInt32(img.height)] { ihdr += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        ihdr += [8, colorType, 0, 0, 0]
        chunk("IHDR", ihdr)
        chunk("IDAT", Deflate.zlib(raw, filtered: true))
        chunk("IEND", [])
        return out
    }

    /// The predictor of PNG filter type `filter` (0...4) from the bytes left
    /// (`a`), above (`b`) and above-left (`c`) of the current one.
    @inline(__always) static func predict(_ filter: UInt8, _ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        switch filter {
        case 0: return 0
        case 1: return a
        case 2: return b
        case 3: return UInt8((Int(a) + Int(b)) / 2)
        default:  // Paeth
            let p = Int(a) + Int(b) - Int(c)
            let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
            return pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
        }
    }

    /// The image's rows, each prefixed by its filter type and filtered.
    static func filtered(_ img: Image8) -> [UInt8] {
        let bpp = img.channels, stride = img.width * bpp
        var out = [UInt8]()
        out.reserveCapacity((stride + 1) * img.height)
        var candidate = [[UInt8]](repeating: [UInt8](repeating: 0, count: stride), count: 5)
        img.pixels.withUnsafeBufferPointer { px in
            for y in 0..<img.height {
                let row = y * stride, up = row - stride
                var best = 0, bestCost = Int.max
                for f in 0..<5 {
                    var cost = 0
                    for i in 0..<stride {
                        let x = px[row + i]
                        let a = i >= bpp ? px[row + i - bpp] : 0, b = y > 0 ? px[up + i] : 0, c = (i >= bpp && y > 0) ? px[up + i - bpp] : 0
                        let v = x &- predict(UInt8(f), a, b, c)
                        candidate[f][i] = v
                        cost += Int(v) < 128 ? Int(v) : 256 - Int(v)
                    }
                    if cost < bestCost { bestCost = cost; best = f }
                }
                out.append(UInt8(best))
                out += candidate[best]
            }
        }
        return out
    }

}
