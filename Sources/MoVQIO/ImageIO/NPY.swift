import Foundation

/// NumPy `.npy` files (format 1.0-3.0, little-endian, C order).
public enum NPY {
    /// An array read from a file: its shape and element type, values widened.
    public struct Array: Sendable {
        public var shape: [Int]
        public var dtype: DType
        /// Values as Double (exact for every integer up to 2^53 and all floats).
        public var values: [Double]
    }

    public static func read(path: String) throws -> Array {
        let data = try readFile(path)
        return try data.withUnsafeBytes { try parse($0, path: path) }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> Array {
        var r = ByteReader(bytes, path: path)
        let magic = try r.bytes(6, "npy magic")
        guard Swift.Array(magic) == [0x93] + Swift.Array("NUMPY".utf8) else {
            throw MoVQError.corruptFile(path: path, reason: "not a .npy file")
        }
        let major = try r.u8()
        _ = try r.u8()
        let headerLen = major == 1 ? Int(try r.u16()) : Int(try r.u32())
        guard headerLen < 1 << 20 else { throw MoVQError.corruptFile(path: path, reason: "npy header too large") }
        let header = String(decoding: try r.bytes(headerLen, "npy header"), as: UTF8.self)
        guard let descr = field(header, "descr"), let shapeText = field(header, "shape") else {
            throw MoVQError.corruptFile(path: path, reason: "npy header lacks descr/shape")
        }
        if let f = field(header, "fortran_order"), f.hasPrefix("True") {
            throw MoVQError.unsupported("\(path): Fortran-ordered .npy arrays")
        }
        let d = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        let dtypes: [String: DType] = ["<f4": .f32, "<f8": .f64, "<f2": .f16, "<i8": .i64, "<i4": .i32, "<i2": .i16,
                                       "|i1": .i8, "|u1": .u8, "<u1": .u8, "|b1": .u8]
        guard let dtype = dtypes[d] else { throw MoVQError.unsupported("\(path): .npy dtype \(d) (use float32 or an integer type)") }
        let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        let dims = try inner.split(separator: ",").map { s -> Int in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                throw MoVQError.corruptFile(path: path, reason: "bad npy shape \(shapeText)")
            }
            return v
        }
        guard let count = checkedElementCount(dims), count * dtype.size <= r.remaining else {
            throw MoVQError.corruptFile(path: path, reason: "npy data shorter than shape \(dims) needs")
        }
        let raw = try r.bytes(count * dtype.size, "npy data")
        var values = [Double](repeating: 0, count: count)
        switch dtype {
        case .f64: for i in 0..<count { values[i] = Double(bitPattern: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).littleEndian) }
        case .i64: for i in 0..<count { values[i] = Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
        default:
            let f = decodeFloats(raw, dtype: dtype, count: count)
            for i in 0..<count { values[i] = Double(f[i]) }
        }
        return Array(shape: dims, dtype: dtype, values: values)
    }

    /// Extracts the text after `'key':` up to the next top-level comma.
    static func field(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)':") ?? header.range(of: "\"\(key)\":") else { return nil }
        var depth = 0
        var out = ""
        for ch in header[r.upperBound...] {
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1; if depth < 0 { break } }
            if (ch == "," || ch == "}") && depth == 0 { break }
            out.append(ch)
        }
        return out.trimmingCharacters(in: .whitespaces)
    }

    /// Serializes float32 data (`<f4`).
    public static func encode(shape: [Int], float32 values: [Float]) -> Data {
        var body = Data(capacity: values.count * 4)
        for v in values { body.appendLE(v.bitPattern) }
        return encode(shape: shape, descr: "<f4", body: body)
    }

    /// Serializes int64 data (`<i8`), as torch writes index maps.
    public static func encode(shape: [Int], int64 values: [Int64]) -> Data {
        var body = Data(capacity: values.count * 8)
        for v in values { body.appendLE(v) }
        return encode(shape: shape, descr: "<i8", body: body)
    }

    static func encode(shape: [Int], descr: String, body: Data) -> Data {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = Data([0x93] + Swift.Array("NUMPY".utf8) + [1, 0])
        out.appendLE(UInt16(header.utf8.count))
        out.append(contentsOf: Swift.Array(header.utf8))
        out.append(body)
        return out
    }
}
