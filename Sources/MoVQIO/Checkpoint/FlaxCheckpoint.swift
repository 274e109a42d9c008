/// Reader for flax checkpoints: `flax.serialization.to_bytes` of a nested
/// dict (the official MaskGIT files), which is msgpack with string keys and
/// arrays as extension values:
/// - type 1 (ndarray) and 3 (numpy scalar): a msgpack `[shape, dtype name, raw C-order bytes]`;
/// - arrays over 1 GiB as a map `{"__msgpack_chunked_array__": true,
///   "shape": {"0": d0, ...}, "chunks": {"0": array, ...}}` of flat pieces.
///
/// Other extension types are refused; non-array leaves (a training step
/// count) and integer arrays are not weights and are skipped. Tensors are
/// named by their path joined with "/" ("decoder/Conv_0/kernel"), after
/// descending through `params`/`target` wrappers (a variables dict, an old
/// optimizer's state).
package enum FlaxCheckpoint {
    /// Whether `bytes` can be a flax checkpoint: a non-empty msgpack map at
    /// the top whose first key is a string (an empty fixmap, 0x80, is what a
    /// legacy torch pickle starts with).
    package static func looksLike(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 2 else { return false }
        let keyAt = bytes[0] == 0xde ? 3 : bytes[0] == 0xdf ? 5 : (0x81...0x8f).contains(bytes[0]) ? 1 : -1
        guard keyAt >= 0, keyAt < bytes.count else { return false }
        return (0xa0...0xbf).contains(bytes[keyAt]) || (0xd9...0xdb).contains(bytes[keyAt])
    }

    package static func read(path: String) throws -> (tensors: [CheckpointTensor], skipped: [String]) {
        let map = try MappedFile(path: path)
        return try parse(map.bytes, path: path)
    }

    /// The float arrays of the checkpoint's parameter tree, in file order, and the skipped leaves' paths.
    package static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> (tensors: [CheckpointTensor], skipped: [String]) {
        func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: why) }
        var root = try MessagePack.parse(bytes, path: path, what: "flax checkpoint")
        guard case .map = root else { throw bad("a flax checkpoint is a msgpack map at the top") }
        for wrapper in ["target", "params", "params"] {
            if let inner = root[wrapper], case .map = inner { root = inner }
        }
        var tensors: [CheckpointTensor] = [], skipped: [String] = []
        func walk(_ v: MessagePack.Value, _ p: [String]) throws {
            let name = p.joined(separator: "/")
            switch v {
            case .map(let entries):
                if v["__msgpack_chunked_array__"] != nil {
                    if let t = try chunked(v, name: name) { tensors.append(t) } else { skipped.append(name) }
                    return
                }
                for e in entries {
                    guard case .string(let key) = e.key else { throw bad("a key under '\(name)' is not a string") }
                    try walk(e.value, p + [key])
                }
            case .ext(let type, let data):
                guard type == 1 || type == 3 else { throw MoVQError.unsupported("\(path): '\(name)' is a msgpack extension of type \(type), not a flax array") }
                if let t = try array(data, name: name, bytes: bytes, path: path) { tensors.append(t) } else { skipped.append(name) }
            default:
                skipped.append(name)
            }
        }
        // Chunks are flat arrays; their shape comes from the map.
        func chunked(_ v: MessagePack.Value, name: String) throws -> CheckpointTensor? {
            func entries(_ key: String) throws -> [MessagePack.Value] {
                guard case .map(let m)? = v[key] else { throw bad("chunked array '\(name)' has no '\(key)' map") }
                // Keys are "0", "1", ... in any order.
                return try (0..<m.count).map { i in
                    guard let e = v[key]?[String(i)] else { throw bad("chunked array '\(name)' misses \(key) entry \(i)") }
                    return e
                }
            }
            let shape = try entries("shape").map { d -> Int in
                guard let n = d.intValue, n >= 0 else { throw bad("chunked array '\(name)' has a bad dimension") }
                return n
            }
            guard shape.count <= 16, let count = checkedElementCount(shape) else { throw bad("chunked array '\(name)' has shape \(shape)") }
            var values: [Float] = []
            for (i, c) in try entries("chunks").enumerated() {
                guard case .ext(1, let data) = c, let piece = try array(data, name: "\(name)/chunks/\(i)", bytes: bytes, path: path) else {
                    throw bad("chunk \(i) of '\(name)' is not a float array")
                }
                guard piece.shape.count == 1, values.count + piece.values.count <= count else { throw bad("chunks of '\(name)' do not add up to shape \(shape)") }
                values += piece.values
            }
            guard values.count == count else { throw bad("chunks of '\(name)' hold \(values.count) elements, shape \(shape) needs \(count)") }
            return CheckpointTensor(name: name, shape: shape, values: values)
        }
        try walk(root, [])
        return (tensors, skipped)
    }

    /// One ndarray payload (`[shape, dtype, bytes]`); nil for a non-float array.
    static func array(_ data: Range<Int>, name: String, bytes: UnsafeRawBufferPointer, path: String) throws -> CheckpointTensor? {
        func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: "array '\(name)': \(why)") }
        guard case .array(let parts) = try MessagePack.parse(bytes, range: data, path: path, what: "array '\(name)'"), parts.count == 3,
              case .array(let dims) = parts[0], case .string(let dtypeName) = parts[1], case .binary(let raw) = parts[2] else {
            throw bad("payload is not [shape, dtype, bytes]")
        }
        let shape = try dims.map { d -> Int in
            guard let n = d.intValue, n >= 0 else { throw bad("bad dimension in shape") }
            return n
        }
        let dtype: DType
        switch dtypeName {
        case "float32": dtype = .f32
        case "float16": dtype = .f16
        case "bfloat16": dtype = .bf16
        case "float64": dtype = .f64
        case "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool": return nil
        default: throw MoVQError.unsupported("\(path): array '\(name)' has dtype '\(dtypeName)'")
        }
        guard shape.count <= 16, let count = checkedElementCount(shape), let n = CheckedSize.product(count, dtype.size), n == raw.count else {
            throw bad("shape \(shape) of \(dtypeName) does not match its \(raw.count) bytes")
        }
        return CheckpointTensor(name: name, shape: shape, values: decodeFloats(UnsafeRawBufferPointer(rebasing: bytes[raw]), dtype: dtype, count: count))
    }
}
