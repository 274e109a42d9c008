/// Reads float tensors from a PyTorch zip checkpoint (`torch.save`, torch >=
/// 1.6) without executing any pickle code. Accepts a bare state dict or one
/// nested under "state_dict".
package enum TorchCheckpoint {
    package static func read(path: String) throws -> [CheckpointTensor] {
        let map = try MappedFile(path: path)
        guard map.bytes.count >= 4, map.bytes[0] == 0x50, map.bytes[1] == 0x4B else {
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
        if let items = unpickler.dictItems(root), let sd = items.first(where: { unpickler.stringValue($0.key) == "state_dict" }) {
            root = sd.value
        }
        guard let items = unpickler.dictItems(root) else {
            throw MoVQError.invalidCheckpoint("\(path): top-level object is not a state dict")
        }
        // Views may share storages, so the tensors could claim more elements
        // than the file holds; refuse to widen more than one element per byte.
        var budget = map.bytes.count
        var out: [CheckpointTensor] = []
        var seen = Set<String>()
        for (k, v) in items {
            guard let name = unpickler.stringValue(k), case .tensor(let t) = unpickler[v] else { continue }
            guard seen.insert(name).inserted else { throw MoVQError.corruptFile(path: path, reason: "tensor '\(name)' appears twice") }
            guard let storage = zip.data("\(prefix)data/\(t.storageKey)") else {
                throw MoVQError.corruptFile(path: path, reason: "storage \(t.storageKey) of tensor '\(name)' is missing")
            }
            let values = try gather(t, storage, name: name, path: path, budget: budget)
            budget -= values.count
            out.append(CheckpointTensor(name: name, shape: t.shape, values: values))
        }
        if out.isEmpty { throw MoVQError.invalidCheckpoint("\(path): no tensors found") }
        return out
    }

    /// Copies a (possibly strided) view out of its storage, as fp32. Every
    /// offset is computed with overflow checks; the view must lie inside the
    /// storage and have no more elements than it (broadcast views, stride 0,
    /// are not weights), and at most `budget` elements.
    static func gather(_ t: RestrictedUnpickler.TensorRef, _ storage: UnsafeRawBufferPointer, name: String, path: String,
                       budget: Int) throws -> [Float] {
        func bad(_ why: String) -> MoVQError { .corruptFile(path: path, reason: "tensor '\(name)' \(why)") }
        guard t.shape.count == t.stride.count, let count = checkedElementCount(t.shape) else {
            throw bad("has an invalid shape \(t.shape)")
        }
        switch t.dtype {
        case .f32, .f16, .bf16, .f64: break
        default: throw MoVQError.unsupported("tensor '\(name)' has dtype \(t.dtype); weights must be floating point")
        }
        let elems = storage.count / t.dtype.size
        if count == 0 { return [] }
        guard count <= elems else { throw bad("has \(count) elements, more than its storage's \(elems) (a broadcast view is not a weight)") }
        guard count <= budget else { throw bad("brings the checkpoint's tensors past one element per file byte (overlapping views?)") }
        // Largest element offset the view touches must lie inside the storage.
        guard t.storageOffset >= 0, t.storageOffset < elems else { throw bad("starts outside its storage (\(elems) elements)") }
        var maxOff = t.storageOffset
        for (d, s) in zip(t.shape, t.stride) {
            guard s >= 0 else { throw bad("has a negative stride") }
            guard let span = CheckedSize.product(d - 1, s), let m = CheckedSize.sum(maxOff, span), m < elems else {
                throw bad("reads past its storage (\(elems) elements)")
            }
            maxOff = m
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
