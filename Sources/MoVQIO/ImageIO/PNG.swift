import Foundation

/// An 8-bit image, interleaved channels, row-major.
public struct Image8: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// 1 (grey), 3 (RGB) or 4 (RGBA).
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels)
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }
}

/// PNG reading (8/16-bit grey, grey+alpha, RGB, RGBA, palette; non-interlaced)
/// and writing (8-bit grey/RGB/RGBA, stored deflate blocks).
public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    static let maxPixels = 1 << 28

    public static func read(path: String) throws -> Image8 {
        let data = try readFile(path)
        return try decode([UInt8](data), path: path)
    }

    public static func decode(_ bytes: [UInt8], path: String = "<png>") throws -> Image8 {
        func bad(_ s: String) -> MoVQError { .corruptFile(path: path, reason: s) }
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
            throw MoVQError.invalidInput("\(path) is not a PNG file")
        }
        var width = 0, height = 0, depth = 0, colorType = 0
        var idat: [UInt8] = []
        var palette: [UInt8] = []
        var sawHeader = false, sawEnd = false
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, path: path, offset: 8)
            while r.remaining > 0 && !sawEnd {
                let len = Int(try r.u32("PNG chunk length").byteSwapped)
                guard len >= 0 && len < 1 << 31 else { throw bad("bad chunk length") }
                let typeAndData = try r.bytes(4 + len, "PNG chunk")
                let crc = try r.u32("PNG chunk CRC").byteSwapped
                guard CRC32.update(0, typeAndData) == crc else { throw bad("PNG chunk CRC mismatch") }
                let type = String(decoding: typeAndData[0..<4], as: UTF8.self)
                let body = Array(typeAndData[4...])
                switch type {
                case "IHDR":
                    guard body.count == 13 else { throw bad("bad IHDR") }
                    func be32(_ i: Int) -> Int { Int(body[i]) << 24 | Int(body[i + 1]) << 16 | Int(body[i + 2]) << 8 | Int(body[i + 3]) }
                    width = be32(0); height = be32(4); depth = Int(body[8]); colorType = Int(body[9])
                    guard body[12] == 0 else { throw MoVQError.unsupported("\(path): interlaced PNG") }
                    sawHeader = true
                case "PLTE": palette = body
                case "IDAT": idat += body
                case "IEND": sawEnd = true
                default: break
                }
            }
        }
        guard sawHeader else { throw bad("missing IHDR") }
        guard sawEnd else { throw bad("missing IEND (truncated?)") }
        guard width > 0, height > 0, width * height <= maxPixels else { throw MoVQError.invalidInput("\(path): absurd image size \(width)x\(height)") }
        let samples: Int
        switch colorType {
        case 0: samples = 1
        case 2: samples = 3
        case 3: samples = 1
        case 4: samples = 2
        case 6: samples = 4
        default: throw bad("invalid color type \(colorType)")
        }
        guard depth == 8 || depth == 16 else { throw MoVQError.unsupported("\(path): \(depth)-bit PNG (8 and 16 bit are supported)") }
        if colorType == 3 && depth != 8 { throw MoVQError.unsupported("\(path): palette PNG with \(depth)-bit indices") }
        let bpp = samples * depth / 8, stride = width * bpp
        let raw: [UInt8]
        do { raw = try Inflate.zlib(idat, limit: (stride + 1) * height) } catch {
            throw bad("image data does not decompress (\(error))")
        }
        guard raw.count == (stride + 1) * height else { throw bad("image data has \(raw.count) bytes, expected \((stride + 1) * height)") }
        var cur = [UInt8](repeating: 0, count: stride * height)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            let src = y * (stride + 1) + 1, dst = y * stride
            for i in 0..<stride {
                let x = raw[src + i]
                let a = i >= bpp ? cur[dst + i - bpp] : 0
                let b = y > 0 ? cur[dst - stride + i] : 0
                let c = (i >= bpp && y > 0) ? cur[dst - stride + i - bpp] : 0
                let v: UInt8
                switch filter {
                case 0: v = x
                case 1: v = x &+ a
                case 2: v = x &+ b
                case 3: v = x &+ UInt8((Int(a) + Int(b)) / 2)
                case 4:
                    let p = Int(a) + Int(b) - Int(c)
                    let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
                    v = x &+ (pa <= pb && pa <= pc ? a : (pb <= pc ? b : c))
                default: throw bad("invalid filter type \(filter)")
                }
                cur[dst + i] = v
            }
        }
        // To 8-bit grey / RGB / RGBA.
        let outChannels = colorType == 0 ? 1 : colorType == 4 ? 4 : colorType == 6 ? 4 : 3
        var px = [UInt8](repeating: 0, count: width * height * outChannels)
        let step = depth / 8
        for i in 0..<(width * height) {
            func s(_ k: Int) -> UInt8 { cur[i * bpp + k * step] }  // high byte for 16-bit
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

    public static func encode(_ img: Image8) -> Data {
        let colorType: UInt8 = img.channels == 1 ? 0 : img.channels == 3 ? 2 : 6
        let stride = img.width * img.channels
        var raw = [UInt8]()
        raw.reserveCapacity((stride + 1) * img.height)
        for y in 0..<img.height { raw.append(0); raw += img.pixels[(y * stride)..<((y + 1) * stride)] }
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
        chunk("IDAT", zlibStored(raw))
        chunk("IEND", [])
        return out
    }

    /// zlib stream of stored (uncompressed) deflate blocks.
    static func zlibStored(_ raw: [UInt8]) -> [UInt8] {
        var z: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            z.append(i + n == raw.count ? 1 : 0)
            z += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for v in raw { a = (a + UInt32(v)) % 65521; b = (b + a) % 65521 }
        let adler = b << 16 | a
        z += [UInt8(adler >> 24), UInt8((adler >> 16) & 0xFF), UInt8((adler >> 8) & 0xFF), UInt8(adler & 0xFF)]
        return z
    }
}
