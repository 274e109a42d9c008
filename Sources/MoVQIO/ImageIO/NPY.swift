import Foundation

/// NumPy `.npy` files (format 1.0-3.0, little-endian, C order).
public enum NPY {
    /// An array read from a file: its shape and element type, values widened.
    public struct Array: Sendable {
        /// Dimensions, outermost first.
        public var shape: [Int]
        /// The stored element type (values are widened to Double).
        public var dtype: DType
        /// Values as Double (exact for every integer up to 2^53 and all floats).
        public var values: [Double]
    }

    /// Reads a little-endian `.npy` (format 1.0-3.0, C order; float, integer and bool dtypes), checking the header strictly.
    public static func read(path: String) throws -> Array {
        let data = try readFile(path)
        return try data.withUnsafeBytes { try parse($0, path: path) }
    }

    /// Parses `.npy` bytes held in memory (as `read`); `name` names the source in errors.
    public static func decode(_ bytes: [UInt8], name: String = "<npy>") throws -> Array {
        try bytes.withUnsafeBytes { try parse($0, path: name) }
    }

    /// Element types by `descr` (little-endian or byte-order-free only).
    static let dtypes: [String: DType] = ["<f4": .f32, "<f8": .f64, "<f2": .f16, "<i8": .i64, "<i4": .i32, "<i2": .i16,
                                          "|i1": .i8, "<i1": .i8, "|u1": .u8, "<u1": .u8, "|b1": .bool]

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> Array {
        func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: why) }
        var r = ByteReader(bytes, path: path)
        let magic = try r.bytes(6, "npy magic")
        guard Swift.Array(magic) == [0x93] + Swift.Array("NUMPY".utf8) else { throw bad("not a .npy file") }
        let major = try r.u8(), minor = try r.u8()
        guard (1...3).contains(major), minor == 0 else { throw MoVQError.unsupported("\(path): .npy format version \(major).\(minor) (this build reads 1.0, 2.0 and 3.0)") }
        let headerLen = major == 1 ? Int(try r.u16()) : Int(try r.u32())
        guard headerLen < 1 << 20 else { throw bad("npy header too large") }
        let header = try Header(String(decoding: try r.bytes(headerLen, "npy header"), as: UTF8.self), path: path)
        if header.fortranOrder { throw MoVQError.unsupported("\(path): Fortran-ordered .npy arrays (save with np.ascontiguousarray)") }
        guard let dtype = dtypes[header.descr] else {
            throw MoVQError.unsupported("\(path): .npy dtype '\(header.descr)' (use little-endian float32 or an integer type)")
        }
        let dims = header.shape
        guard let count = checkedElementCount(dims), let nbytes = CheckedSize.product(count, dtype.size), nbytes == r.remaining else {
            throw bad("npy data is \(r.remaining) bytes, shape \(dims) of \(header.descr) needs \(checkedElementCount(dims).map { String($0 * dtype.size) } ?? "too many")")
        }
        let raw = try r.bytes(nbytes, "npy data")
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

    /// The header: a Python dict literal with exactly the keys `descr`
    /// (a string), `fortran_order` (True/False) and `shape` (a tuple of ints).
    struct Header {
        var descr = "", fortranOrder = false, shape: [Int] = []

        init(_ text: String, path: String) throws {
            func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: "npy header \(why)") }
            var s = Substring(text)
            func skip() { s = s.drop { $0 == " " || $0 == "\n" || $0 == "\t" } }
            func take(_ t: String) -> Bool { skip(); if s.hasPrefix(t) { s = s.dropFirst(t.count); return true }; return false }
            func quoted() throws -> String {
                skip()
                guard let q = s.first, q == "'" || q == "\"" else { throw bad("expects a quoted string") }
                s = s.dropFirst()
                guard let end = s.firstIndex(of: q) else { throw bad("has an unterminated string") }
                defer { s = s[s.index(after: end)...] }
                return String(s[..<end])
            }
            func integer() throws -> Int {
                skip()
                let digits = s.prefix { $0.isASCII && $0.isNumber }
                guard !digits.isEmpty, digits.count <= 18, let v = Int(digits) else { throw bad("has a bad dimension") }
                s = s.dropFirst(digits.count)
                _ = take("L")  // Python 2 longs
                return v
            }
            guard take("{") else { throw bad("is not a dict") }
            var seen = Set<String>()
            while !take("}") {
                let key = try quoted()
                guard seen.insert(key).inserted else { throw bad("repeats key '\(key)'") }
                guard take(":") else { throw bad("lacks ':' after '\(key)'") }
                switch key {
                case "descr": descr = try quoted()
                case "fortran_order":
                    if take("True") { fortranOrder = true } else if take("False") { fortranOrder = false } else { throw bad("fortran_order is not True or False") }
                case "shape":
                    guard take("(") else { throw bad("shape is not a tuple") }
                    while !take(")") {
                        shape.append(try integer())
                        guard take(",") || s.first == ")" else { throw bad("shape is not a tuple of integers") }
                    }
                default: throw bad("has unknown key '\(key)'")
                }
                guard take(",") || s.first == "}" else { throw bad("lacks ',' after '\(key)'") }
            }
            guard seen == ["descr", "fortran_order", "shape"] else { throw bad("lacks \(Set(["descr", "fortran_order", "shape"]).subtracting(seen).sorted())") }
            skip()
            guard s.isEmpty else { throw bad("has text after the dict") }
        }
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

extension NPY.Array {
    /// The array as a float tensor (float dtypes only); `name` names it in errors.
    public func floatTensor(name: String) throws -> Tensor {
        guard dtype == .f32 || dtype == .f64 || dtype == .f16 else {
            throw MoVQError.invalidInput("\(name): latent must be float, got \(dtype)")
        }
        return try Tensor(shape: shape, data: values.map { Float($0) })
    }

    /// The array as an index map: integers, `[B, h, w]` (one index per
    /// position, given a channel axis) or `[B, c, h, w]`; `name` names it in errors.
    public func indexMap(name: String) throws -> IndexMap {
        guard [.i64, .i32, .i16, .i8, .u8].contains(dtype) else {
            throw MoVQError.invalidInput("\(name): indices must be integers, got \(dtype)")
        }
        var s = shape
        if s.count == 3 { s.insert(1, at: 1) }
        guard s.count == 4 else { throw MoVQError.invalidInput("\(name): indices must be [B, h, w] or [B, c, h, w], got \(shape)") }
        let v = try values.map { x -> Int32 in
            guard x >= 0 && x < Double(Int32.max) else { throw MoVQError.invalidInput("\(name): index \(Int64(x)) is negative or too large") }
            return Int32(x)
        }
        return try IndexMap(shape: s, values: v)
    }
}
