/// A strict JSON (RFC 8259) reader for headers of untrusted files. Unlike
/// `JSONSerialization` it refuses duplicate object keys (which another
/// reader might resolve differently), limits nesting depth, and keeps
/// integers exact up to 64 bits.
package indirect enum StrictJSON: Equatable {
    case null, bool(Bool), int(Int), double(Double), string(String)
    case array([StrictJSON])
    /// Members in file order; keys are unique.
    case object([(String, StrictJSON)])

    package static func == (a: StrictJSON, b: StrictJSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Parses one JSON value filling all of `bytes`; `what` names the
    /// document in errors.
    package static func parse(_ bytes: UnsafeRawBufferPointer, path: String, what: String, maxDepth: Int = 32) throws -> StrictJSON {
        var p = Parser(bytes: bytes, path: path, what: what, maxDepth: maxDepth)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("trailing bytes after the JSON value") }
        return v
    }

    package subscript(key: String) -> StrictJSON? {
        if case .object(let m) = self { return m.first { $0.0 == key }?.1 }
        return nil
    }

    package var intValue: Int? { if case .int(let v) = self { return v }; return nil }
    package var stringValue: String? { if case .string(let v) = self { return v }; return nil }
    package var arrayValue: [StrictJSON]? { if case .array(let v) = self { return v }; return nil }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let path: String, what: String, maxDepth: Int
        var i = 0

        func fail(_ why: String) -> MoVQError { .corruptFile(path: path, reason: "\(what) is not valid JSON: \(why) at byte \(i)") }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 }
        }

        mutating func expect(_ word: String) throws {
            for b in word.utf8 {
                guard peek == b else { throw fail("expected '\(word)'") }
                i += 1
            }
        }

        mutating func value(depth: Int) throws -> StrictJSON {
            guard depth < maxDepth else { throw fail("nested deeper than \(maxDepth)") }
            switch peek {
            case UInt8(ascii: "{"):
                i += 1; skipSpace()
                var members: [(String, StrictJSON)] = []
                var keys = Set<String>()
                if peek == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    guard peek == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let k = try string()
                    guard keys.insert(k).inserted else { throw fail("duplicate key '\(k)'") }
                    skipSpace(); try expect(":"); skipSpace()
                    members.append((k, try value(depth: depth + 1)))
                    skipSpace()
                    if peek == UInt8(ascii: ",") { i += 1; skipSpace(); continue }
                    try expect("}")
                    return .object(members)
                }
            case UInt8(ascii: "["):
                i += 1; skipSpace()
                var items: [StrictJSON] = []
                if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    if peek == UInt8(ascii: ",") { i += 1; skipSpace(); continue }
                    try expect("]")
                    return .array(items)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case .some(let c) where c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39): return try number()
            default: throw fail("unexpected byte")
            }
        }

        mutating func number() throws -> StrictJSON {
            let start = i
            var isInt = true
            if peek == UInt8(ascii: "-") { i += 1 }
            guard let first = peek, first >= 0x30 && first <= 0x39 else { throw fail("bad number") }
            while let c = peek, c >= 0x30 && c <= 0x39 { i += 1 }
            if peek == UInt8(ascii: ".") { isInt = false; i += 1; while let c = peek, c >= 0x30 && c <= 0x39 { i += 1 } }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                isInt = false; i += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
                while let c = peek, c >= 0x30 && c <= 0x39 { i += 1 }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            if isInt {
                guard let v = Int(text) else { throw fail("integer \(text.prefix(30)) out of range") }
                return .int(v)
            }
            guard let d = Double(text), d.isFinite else { throw fail("bad number \(text.prefix(30))") }
            return .double(d)
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard let c = peek else { throw fail("unterminated string") }
                i += 1
                switch c {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw fail("unterminated escape") }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard i + 4 <= bytes.count, let u = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 4)]), as: UTF8.self), radix: 16) else {
                            throw fail("bad \\u escape")
                        }
                        i += 4
                        // Surrogates (pairs included) become U+FFFD: names in headers are ASCII in practice.
                        let scalar = Unicode.Scalar(u) ?? "\u{FFFD}"
                        out += Array(String(Character(scalar)).utf8)
                    default: throw fail("bad escape")
                    }
                case 0..<0x20: throw fail("control character in string")
                default: out.append(c)
                }
            }
        }
    }
}
