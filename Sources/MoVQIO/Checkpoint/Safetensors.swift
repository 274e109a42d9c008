import Foundation

/// Reader for the safetensors format: u64 header length, JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}}`, then raw data.
public enum Safetensors {
    public static func read(path: String) throws -> [CheckpointTensor] {
        let map = try MappedFile(path: path)
        var r = ByteReader(map.bytes, path: path)
        let n = try r.u64("safetensors header length")
        guard n >= 2, n <= 100_000_000, Int(n) <= r.remaining else {
            throw MoVQError.corruptFile(path: path, reason: "safetensors header length \(n) is impossible for a \(map.bytes.count)-byte file")
        }
        let hb = try r.bytes(Int(n), "safetensors header")
        guard let json = try? JSONSerialization.jsonObject(with: Data(hb)) as? [String: Any] else {
            throw MoVQError.corruptFile(path: path, reason: "safetensors header is not a JSON object")
        }
        let dataStart = 8 + Int(n), dataSize = map.bytes.count - dataStart
        var out: [CheckpointTensor] = []
        for name in json.keys.sorted() where name != "__metadata__" {
            guard let info = json[name] as? [String: Any], let dt = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offs = info["data_offsets"] as? [Int], offs.count == 2 else {
                throw MoVQError.corruptFile(path: path, reason: "bad safetensors entry for '\(name)'")
            }
            let dtype: DType
            switch dt {
            case "F32": dtype = .f32
            case "F16": dtype = .f16
            case "BF16": dtype = .bf16
            case "F64": dtype = .f64
            default: throw MoVQError.unsupported("tensor '\(name)' has dtype \(dt); weights must be floating point")
            }
            guard let count = checkedElementCount(shape), offs[0] >= 0, offs[1] >= offs[0], offs[1] <= dataSize,
                  offs[1] - offs[0] == count * dtype.size else {
                throw MoVQError.corruptFile(path: path, reason: "tensor '\(name)' data range \(offs) does not fit shape \(shape) or the file")
            }
            let raw = UnsafeRawBufferPointer(rebasing: map.bytes[(dataStart + offs[0])..<(dataStart + offs[1])])
            out.append(CheckpointTensor(name: name, shape: shape, values: decodeFloats(raw, dtype: dtype, count: count)))
        }
        return out
    }
}
