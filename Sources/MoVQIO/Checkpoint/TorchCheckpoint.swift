/// Reads float tensors from a PyTorch zip checkpoint (`torch.save`, torch >=
/// 1.6) without executing any pickle code. Accepts a bare state dict or one
/// nested under "state_dict".
public enum TorchCheckpoint {
    public static func read(path: String) throws -> [CheckpointTensor] {
        let map = try MappedFile(path: path)
        guard map.bytes.count >= 4, map.bytes[0] == 0x50, map.bytes[1] == 0x4B else {
            if map.bytes.count >= 2 && map.bytes[0] == 0x80 {
                throw MoVQError.unsupported("\(path): legacy (pre-1.6, non-zip) torch checkpoint; re-save it with a current torch.save")
            }
            throw MoVQError.corruptFile(path: path, reason: "not a PyTorch zip checkpoint")
        }
        let zip = try ZipArchive(bytes: map.bytes, path: path)
        guard let pklName = zip.names.first(where: { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }),
              let pkl = zip.data(pklName) else {
            throw MoVQError.corruptFile(path: path, reason: "zip has no data.pkl")
        }
        let prefix = String(pklName.dropLast("data.pkl".count))
        var unpickler = RestrictedUnpickler(pkl, path: path)
        var root = try unpickler.run()
        // Lightning / taming checkpoints nest the weights under "state_dict".
        if case .dict(let d) = root, let sd = d.items.first(where: { if case .string("state_dict") = $0.0 { return true }; return false }) {
            root = sd.1
        }
        guard case .dict(let dict) = root else {
            throw MoVQError.invalidCheckpoint("\(path): top-level object is not a state dict")
        }
        var out: [CheckpointTensor] = []
        for (k, v) in dict.items {
            guard case .string(let name) = k, case .tensor(let t) = v else { continue }
            guard let storage = zip.data("\(prefix)data/\(t.storageKey)") else {
                throw MoVQError.corruptFile(path: path, reason: "storage \(t.storageKey) of tensor '\(name)' is missing")
            }
            out.append(CheckpointTensor(name: name, shape: t.shape, values: try gather(t, storage, name: name, path: path)))
        }
        if out.isEmpty { throw MoVQError.invalidCheckpoint("\(path): no tensors found") }
        return out
    }

    /// Copies a (possibly strided) view out of its storage, as fp32.
    static func gather(_ t: RestrictedUnpickler.TensorRef, _ storage: UnsafeRawBufferPointer, name: String, path: String) throws -> [Float] {
        guard t.shape.count == t.stride.count, let count = checkedElementCount(t.shape) else {
            throw MoVQError.corruptFile(path: path, reason: "tensor '\(name)' has an invalid shape \(t.shape)")
        }
        switch t.dtype {
        case .f32, .f16, .bf16, .f64: break
        default: throw MoVQError.unsupported("tensor '\(name)' has dtype \(t.dtype); weights must be floating point")
        }
        let elems = storage.count / t.dtype.size
        if count == 0 { return [] }
        // Largest element offset the view touches must lie inside the storage.
        var maxOff = t.storageOffset
        for (d, s) in zip(t.shape, t.stride) {
            guard s >= 0 else { throw MoVQError.corruptFile(path: path, reason: "tensor '\(name)' has a negative stride") }
            maxOff += (d - 1) * s
        }
        guard t.storageOffset >= 0, maxOff < elems else {
            throw MoVQError.corruptFile(path: path, reason: "tensor '\(name)' reads past its storage (\(elems) elements)")
        }
        // Decode only the span the view touches (storages may be shared).
        let lo = t.storageOffset * t.dtype.size, hi = (maxOff + 1) * t.dtype.size
        let all = decodeFloats(UnsafeRawBufferPointer(rebasing: storage[lo..<hi]), dtype: t.dtype, count: maxOff + 1 - t.storageOffset)
        var contiguous = true
        var expect = 1
        for (d, s) in zip(t.shape, t.stride).reversed() where d != 1 { if s != expect { contiguous = false }; expect *= d }
        if contiguous { return Array(all[0..<count]) }
        var out = [Float](repeating: 0, count: count)
        var idx = [Int](repeating: 0, count: t.shape.count)
        for i in 0..<count {
            var off = 0
            for d in 0..<idx.count { off += idx[d] * t.stride[d] }
            out[i] = all[off]
            var d = idx.count - 1
            while d >= 0 { idx[d] += 1; if idx[d] < t.shape[d] { break }; idx[d] = 0; d -= 1 }
        }
        return out
    }
}
