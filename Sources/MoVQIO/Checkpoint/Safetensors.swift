/// Reader for the safetensors format: u64 header length, JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}}`, then raw data.
///
/// Validated as the reference implementation does: unique names, every
/// range inside the data and the ranges tiling it without overlap or holes.
package enum Safetensors {
    static let maxHeaderBytes = 100_000_000

    package static func read(path: String) throws -> [CheckpointTensor] {
        let map = try MappedFile(path: path)
        return try parse(map.bytes, path: path)
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [CheckpointTensor] {
        func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: why) }
        var r = ByteReader(bytes, path: path)
        let n = try r.u64("safetensors header length")
        guard n >= 2, n <= UInt64(maxHeaderBytes), Int(n) <= r.remaining else {
            throw bad("safetensors header length \(n) is impossible for a \(bytes.count)-byte file")
        }
        let json = try StrictJSON.parse(try r.bytes(Int(n), "safetensors header"), path: path, what: "safetensors header")
        guard case .object(let members) = json else { throw bad("safetensors header is not a JSON object") }
        let dataStart = 8 + Int(n), dataSize = bytes.count - dataStart
        struct Item { var name: String; var dtype: DType; var shape: [Int]; var begin: Int; var end: Int }
        var items: [Item] = []
        for (name, info) in members where name != "__metadata__" {
            guard let dt = info["dtype"]?.stringValue, let shapeJSON = info["shape"]?.arrayValue,
                  let offs = info["data_offsets"]?.arrayValue?.compactMap(\.intValue), offs.count == 2 else {
                throw bad("bad safetensors entry for '\(name)'")
            }
            let shape = shapeJSON.compactMap(\.intValue)
            guard shape.count == shapeJSON.count, shape.count <= 16 else { throw bad("bad shape for '\(name)'") }
            let dtype: DType
            switch dt {
            case "F32": dtype = .f32
            case "F16": dtype = .f16
            case "BF16": dtype = .bf16
            case "F64": dtype = .f64
            default: throw MoVQError.unsupported("tensor '\(name)' has dtype \(dt); weights must be floating point")
            }
            guard let count = checkedElementCount(shape), let nbytes = CheckedSize.product(count, dtype.size),
                  offs[0] >= 0, offs[1] >= offs[0], offs[1] <= dataSize, offs[1] - offs[0] == nbytes else {
                throw bad("tensor '\(name)' data range \(offs) does not fit shape \(shape) or the file")
            }
            items.append(Item(name: name, dtype: dtype, shape: shape, begin: offs[0], end: offs[1]))
        }
        // The ranges must tile the data: sorted, each starts where the last ended.
        var next = 0
        for it in items.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard it.begin == next else {
                throw bad(it.begin < next ? "tensor '\(it.name)' overlaps another tensor's bytes" : "hole in the data before tensor '\(it.name)'")
            }
            next = it.end
        }
        guard next == dataSize else { throw bad("\(dataSize - next) bytes after the last tensor belong to none") }
        return items.sorted { $0.name < $1.name }.map { it in
            let raw = UnsafeRawBufferPointer(rebasing: bytes[(dataStart + it.begin)..<(dataStart + it.end)])
            return CheckpointTensor(name: it.name, shape: it.shape, values: decodeFloats(raw, dtype: it.dtype, count: (it.end - it.begin) / it.dtype.size))
        }
    }
}
