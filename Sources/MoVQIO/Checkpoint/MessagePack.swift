/// A bounded, validating MessagePack reader (the subset-free spec:
/// every type family; msgpack.org's format spec), for flax checkpoints.
///
/// Hostile bytes get a one-line error, never a crash or a large
/// allocation: nesting is limited to `maxDepth`; a container's declared
/// element count must fit the bytes left (each element takes at least
/// one byte) before anything is reserved; strings, binaries and
/// extensions are ranges checked against the input, kept as offsets
/// into it (a checkpoint's tensors are not copied while parsing).
package enum MessagePack {
    /// One decoded value. `binary` and `ext` payloads are byte ranges of the parsed buffer.
    package indirect enum Value: Equatable, Sendable {
        case none
        case bool(Bool)
        case int(Int64)
        case uint(UInt64)
        case float(Double)
        case string(String)
        case binary(Range<Int>)
        case array([Value])
        /// Entries in file order (duplicate keys are refused by `parse`).
        case map([(key: Value, value: Value)])
        case ext(type: Int8, data: Range<Int>)

        package static func == (a: Value, b: Value) -> Bool {
            switch (a, b) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.int(let x), .int(let y)): return x == y
            case (.uint(let x), .uint(let y)): return x == y
            case (.float(let x), .float(let y)): return x == y || (x.isNaN && y.isNaN)
            case (.string(let x), .string(let y)): return x == y
            case (.binary(let x), .binary(let y)): return x == y
            case (.array(let x), .array(let y)): return x == y
            case (.map(let x), .map(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
            case (.ext(let t, let d), .ext(let u, let e)): return t == u && d == e
            default: return false
            }
        }

        /// The value of `key` in a map with string keys (nil otherwise).
        package subscript(key: String) -> Value? {
            guard case .map(let entries) = self else { return nil }
            return entries.first { $0.key == .string(key) }?.value
        }

        /// An integer that fits `Int`.
        package var intValue: Int? {
            switch self {
            case .int(let v): return Int(exactly: v)
            case .uint(let v): return Int(exactly: v)
            default: return nil
            }
        }
    }

    /// Deepest nesting of arrays and maps accepted.
    package static let maxDepth = 64

    /// Parses exactly one value filling `bytes` (bytes after it are an error).
    package static func parse(_ bytes: UnsafeRawBufferPointer, path: String, what: String = "msgpack") throws -> Value {
        var r = Reader(r: ByteReader(bytes, path: path), what: what)
        let v = try r.value(depth: 0)
        if r.r.remaining != 0 { throw r.bad("\(r.r.remaining) bytes after the top-level value") }
        return v
    }

    /// Parses one value of `bytes[range]` (an extension payload), which it must fill.
    package static func parse(_ bytes: UnsafeRawBufferPointer, range: Range<Int>, path: String, what: String) throws -> Value {
        try parse(UnsafeRawBufferPointer(rebasing: bytes[range]), path: path, what: what).shifted(by: range.lowerBound)
    }

    struct Reader {
        var r: ByteReader
        let what: String

        func bad(_ why: String) -> MoVQError { .corruptFile(path: r.path, reason: "\(what) at byte \(r.offset): \(why)") }

        mutating func be(_ n: Int) throws -> UInt64 {
            try r.need(n, what)
            var v: UInt64 = 0
            for _ in 0..<n { v = v << 8 | UInt64(try r.u8(what)) }
            return v
        }

        /// A range of `n` bytes at the read position (checked before it is taken).
        mutating func range(_ n: UInt64, _ kind: String) throws -> Range<Int> {
            guard n <= UInt64(r.remaining) else { throw bad("\(kind) of \(n) bytes, \(r.remaining) left") }
            let start = r.offset
            try r.skip(Int(n), what)
            return start..<r.offset
        }

        /// A container of `n` entries of `perEntry` values each: refused before
        /// reserving when the bytes left cannot hold that many values.
        mutating func count(_ n: UInt64, perEntry: UInt64, _ kind: String) throws -> Int {
            guard n <= UInt64(r.remaining) / perEntry else { throw bad("\(kind) of \(n) entries cannot fit the \(r.remaining) bytes left") }
            return Int(n)
        }

        mutating func value(depth: Int) throws -> Value {
            let b = try r.u8(what)
            switch b {
            case 0x00...0x7f: return .int(Int64(b))
            case 0xe0...0xff: return .int(Int64(Int8(bitPattern: b)))
            case 0x80...0x8f: return try map(UInt64(b & 0x0f), depth: depth)
            case 0x90...0x9f: return try array(UInt64(b & 0x0f), depth: depth)
            case 0xa0...0xbf: return try string(UInt64(b & 0x1f))
            case 0xc0: return .none
            case 0xc2: return .bool(false)
            case 0xc3: return .bool(true)
            case 0xc4, 0xc5, 0xc6: return .binary(try range(try be(1 << Int(b - 0xc4)), "binary"))
            case 0xc7, 0xc8, 0xc9:
                let n = try be(1 << Int(b - 0xc7))
                let type = Int8(bitPattern: try r.u8(what))
                return .ext(type: type, data: try range(n, "extension"))
            case 0xca: return .float(Double(Float(bitPattern: UInt32(try be(4)))))
            case 0xcb: return .float(Double(bitPattern: try be(8)))
            case 0xcc, 0xcd, 0xce, 0xcf: return .uint(try be(1 << Int(b - 0xcc)))
            case 0xd0, 0xd1, 0xd2, 0xd3:
                let n = 1 << Int(b - 0xd0), raw = try be(n)
                // Sign-extend the n-byte two's complement value.
                let shift = UInt64(64 - 8 * n)
                return .int(Int64(bitPattern: raw << shift) >> Int64(shift))
            case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
                let type = Int8(bitPattern: try r.u8(what))
                return .ext(type: type, data: try range(1 << UInt64(b - 0xd4), "extension"))
            case 0xd9, 0xda, 0xdb: return try string(try be(1 << Int(b - 0xd9)))
            case 0xdc, 0xdd: return try array(try be(b == 0xdc ? 2 : 4), depth: depth)
            case 0xde, 0xdf: return try map(try be(b == 0xde ? 2 : 4), depth: depth)
            default: throw bad(String(format: "byte 0x%02x is not a msgpack type", b))  // 0xc1: never used
            }
        }

        mutating func string(_ n: UInt64) throws -> Value {
            let span = try range(n, "string")
            guard let s = String(validating: UnsafeRawBufferPointer(rebasing: r.bytes[span]), as: UTF8.self) else { throw bad("string is not UTF-8") }
            return .string(s)
        }

        mutating func array(_ n: UInt64, depth: Int) throws -> Value {
            guard depth < MessagePack.maxDepth else { throw bad("nested deeper than \(MessagePack.maxDepth)") }
            let count = try count(n, perEntry: 1, "array")
            var items: [Value] = []
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try value(depth: depth + 1)) }
            return .array(items)
        }

        mutating func map(_ n: UInt64, depth: Int) throws -> Value {
            guard depth < MessagePack.maxDepth else { throw bad("nested deeper than \(MessagePack.maxDepth)") }
            let count = try count(n, perEntry: 2, "map")
            var entries: [(key: Value, value: Value)] = []
            entries.reserveCapacity(count)
            var stringKeys = Set<String>()
            for _ in 0..<count {
                let key = try value(depth: depth + 1)
                if case .string(let s) = key, !stringKeys.insert(s).inserted { throw bad("duplicate map key '\(s)'") }
                entries.append((key, try value(depth: depth + 1)))
            }
            return .map(entries)
        }
    }
}

extension MessagePack.Value {
    /// The value with every byte range moved by `delta` (a nested payload's ranges made absolute).
    func shifted(by delta: Int) -> Self {
        switch self {
        case .binary(let r): return .binary((r.lowerBound + delta)..<(r.upperBound + delta))
        case .ext(let t, let r): return .ext(type: t, data: (r.lowerBound + delta)..<(r.upperBound + delta))
        case .array(let a): return .array(a.map { $0.shifted(by: delta) })
        case .map(let m): return .map(m.map { ($0.key.shifted(by: delta), $0.value.shifted(by: delta)) })
        default: return self
        }
    }
}
