import Foundation
@testable import MoVQ
@testable import MoVQIO

/// Builders of hostile (and valid) inputs for the untrusted-input tests:
/// zip archives, torch pickles, PNG chunks, packed headers.
enum Crafted {
    // MARK: zip

    /// A stored zip archive of `entries`. With `zip64`, the end records are
    /// the zip64 ones (what torch.save writes past 4 GiB or 65,535 entries).
    static func zip(_ entries: [(name: String, data: [UInt8])], zip64: Bool = false, corruptCRC: Bool = false) -> Data {
        var out = Data(), directory = Data()
        for (i, e) in entries.enumerated() {
            let offset = out.count
            var crc = CRC32.checksum(e.data)
            if corruptCRC && i == entries.count - 1 { crc ^= 1 }
            let name = Array(e.name.utf8)
            out.appendLE(UInt32(0x0403_4B50)); out.appendLE(UInt16(20)); out.appendLE(UInt16(0)); out.appendLE(UInt16(0))
            out.appendLE(UInt32(0)); out.appendLE(crc); out.appendLE(UInt32(e.data.count)); out.appendLE(UInt32(e.data.count))
            out.appendLE(UInt16(name.count)); out.appendLE(UInt16(0))
            out.append(contentsOf: name); out.append(contentsOf: e.data)
            directory.appendLE(UInt32(0x0201_4B50)); directory.appendLE(UInt16(45)); directory.appendLE(UInt16(20))
            directory.appendLE(UInt16(0)); directory.appendLE(UInt16(0)); directory.appendLE(UInt32(0)); directory.appendLE(crc)
            directory.appendLE(UInt32(e.data.count)); directory.appendLE(UInt32(e.data.count))
            directory.appendLE(UInt16(name.count)); directory.appendLE(UInt16(zip64 ? 12 : 0)); directory.appendLE(UInt16(0))
            directory.appendLE(UInt16(0)); directory.appendLE(UInt16(0)); directory.appendLE(UInt32(0))
            directory.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(offset)))
            directory.append(contentsOf: name)
            if zip64 { directory.appendLE(UInt16(1)); directory.appendLE(UInt16(8)); directory.appendLE(UInt64(offset)) }
        }
        let cdOffset = out.count
        out.append(directory)
        if zip64 {
            let z64 = out.count
            out.appendLE(UInt32(0x0606_4B50)); out.appendLE(UInt64(44)); out.appendLE(UInt16(45)); out.appendLE(UInt16(45))
            out.appendLE(UInt32(0)); out.appendLE(UInt32(0))
            out.appendLE(UInt64(entries.count)); out.appendLE(UInt64(entries.count))
            out.appendLE(UInt64(directory.count)); out.appendLE(UInt64(cdOffset))
            out.appendLE(UInt32(0x0706_4B50)); out.appendLE(UInt32(0)); out.appendLE(UInt64(z64)); out.appendLE(UInt32(1))
        }
        out.appendLE(UInt32(0x0605_4B50)); out.appendLE(UInt16(0)); out.appendLE(UInt16(0))
        out.appendLE(UInt16(zip64 ? 0xFFFF : UInt16(entries.count))); out.appendLE(UInt16(zip64 ? 0xFFFF : UInt16(entries.count)))
        out.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(directory.count))); out.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(cdOffset)))
        out.appendLE(UInt16(0))
        return out
    }

    // MARK: torch pickles

    /// One tensor of a crafted state dict: a view of float storage `key`.
    struct TensorView { var name: String; var key: String; var offset: Int; var shape: [Int]; var stride: [Int] }

    /// Pickle opcodes for a 64-bit signed integer (LONG1).
    static func int(_ v: Int) -> [UInt8] {
        var le = Int64(v).littleEndian
        return [0x8A, 8] + withUnsafeBytes(of: &le) { Array($0) }
    }

    static func unicode(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        return [0x8C, UInt8(u.count)] + u
    }

    /// The pickle torch.save writes for `{name: tensor}` (protocol 2 opcodes).
    static func statePickle(_ tensors: [TensorView], storageElements: [String: Int]) -> [UInt8] {
        var p: [UInt8] = [0x80, 2, 0x7D, 0x28]  // PROTO 2, EMPTY_DICT, MARK
        for t in tensors {
            p += unicode(t.name)
            p += [0x63] + Array("torch._utils\n_rebuild_tensor_v2\n".utf8)
            p += [0x28]  // MARK of the args tuple
            p += [0x28] + unicode("storage") + [0x63] + Array("torch\nFloatStorage\n".utf8) + unicode(t.key) + unicode("cpu")
            p += int(storageElements[t.key] ?? 0) + [0x74, 0x51]  // TUPLE, BINPERSID
            p += int(t.offset)
            p += [0x28] + t.shape.flatMap(int) + [0x74]
            p += [0x28] + t.stride.flatMap(int) + [0x74]
            p += [0x89, 0x63] + Array("collections\nOrderedDict\n".utf8) + [0x29, 0x52]  // False, OrderedDict()
            p += [0x74, 0x52]  // TUPLE, REDUCE
        }
        return p + [0x75, 0x2E]  // SETITEMS, STOP
    }

    /// A torch zip checkpoint of float32 storages and views of them.
    static func torchCheckpoint(_ tensors: [TensorView], storages: [String: [Float]], zip64: Bool = false, corruptCRC: Bool = false) -> Data {
        var entries: [(String, [UInt8])] = [("archive/data.pkl", statePickle(tensors, storageElements: storages.mapValues(\.count)))]
        for (key, values) in storages.sorted(by: { $0.key < $1.key }) {
            entries.append(("archive/data/\(key)", values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }))
        }
        return zip(entries, zip64: zip64, corruptCRC: corruptCRC)
    }

    // MARK: PNG

    /// A PNG chunk with its length and CRC.
    static func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let td = Array(type.utf8) + body
        let n = UInt32(body.count), c = CRC32.checksum(td)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + td
            + [UInt8(c >> 24), UInt8(c >> 16 & 0xFF), UInt8(c >> 8 & 0xFF), UInt8(c & 0xFF)]
    }

    static func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func ihdr(width: Int, height: Int, depth: UInt8 = 8, colorType: UInt8 = 0, compression: UInt8 = 0, filter: UInt8 = 0, interlace: UInt8 = 0) -> [UInt8] {
        chunk("IHDR", be32(width) + be32(height) + [depth, colorType, compression, filter, interlace])
    }

    /// Signature + `chunks` (each already framed by `chunk`).
    static func png(_ chunks: [[UInt8]]) -> [UInt8] { PNG.signature + chunks.flatMap { $0 } }

    // MARK: packed files

    /// Rewrites a packed file's JSON header with `edit` and relocates the
    /// tensor data behind it, keeping checksums of the data valid.
    static func editPacked(_ file: Data, _ edit: (inout [String: Any]) -> Void) throws -> Data {
        let bytes = [UInt8](file)
        let headerLen = Int(bytes[16..<24].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var json = try JSONSerialization.jsonObject(with: Data(bytes[32..<(32 + headerLen)])) as! [String: Any]
        let oldStart = PackedWriter.align(32 + headerLen)
        edit(&json)
        // The header's length moves the data: iterate until the offsets are stable.
        var newStart = oldStart, headerBytes = Data()
        for _ in 0..<4 {
            var j = json
            let shift = newStart - oldStart
            j["tensors"] = (json["tensors"] as! [[String: Any]]).map { t in var t = t; t["offset"] = (t["offset"] as! Int) + shift; return t }
            headerBytes = try JSONSerialization.data(withJSONObject: j, options: [.sortedKeys])
            let s = PackedWriter.align(32 + headerBytes.count)
            if s == newStart { break }
            newStart = s
        }
        var out = Data(bytes[0..<16])
        out.appendLE(UInt64(headerBytes.count)); out.appendLE(CRC32.checksum([UInt8](headerBytes))); out.appendLE(UInt32(0))
        out.append(headerBytes)
        out.append(Data(count: newStart - out.count))
        out.append(contentsOf: bytes[oldStart...])
        return out
    }
}

extension Crafted {
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
        let adler = Inflate.adler32(raw)
        z += [UInt8(adler >> 24), UInt8((adler >> 16) & 0xFF), UInt8((adler >> 8) & 0xFF), UInt8(adler & 0xFF)]
        return z
    }
}
