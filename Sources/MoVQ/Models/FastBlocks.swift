/// A resnet block on the fast path: `shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))`,
/// freeing each map as soon as it is dead so at most three full maps are alive.
struct FastResnet: @unchecked Sendable {
    let norm1: FastNorm, conv1: FastConv, norm2: FastNorm, conv2: FastConv, shortcut: FastConv?

    init(_ r: ResnetBlock) {
        norm1 = FastNorm(layer: r.norm1); conv1 = FastConv(r.conv1)
        norm2 = FastNorm(layer: r.norm2); conv2 = FastConv(r.conv2)
        shortcut = r.shortcut.map { FastConv($0) }
    }

    /// Consumes `x` (its buffer goes back to the workspace).
    func callAsFunction(_ x: PlanarMap, zq: Tensor?, _ rt: FastRuntime, _ ws: Workspace) -> PlanarMap {
        let (h, w) = (x.height, x.width)
        let n1 = PlanarMap(ws, channels: x.channels, height: h, width: w)
        norm1(x, into: n1, zq: zq, silu: true, rt)
        let h1 = PlanarMap(ws, channels: conv1.outChannels, height: h, width: w)
        conv1(n1, into: h1, rt)
        ws.give(n1.buffer)
        norm2(h1, into: h1, zq: zq, silu: true, rt)  // in place: each element is read, then written
        var skip = x
        if let s = shortcut {
            skip = PlanarMap(ws, channels: s.outChannels, height: h, width: w)
            s(x, into: skip, rt)
        }
        let out = PlanarMap(ws, channels: conv2.outChannels, height: h, width: w)
        conv2(h1, into: out, residual: skip, rt)
        ws.give(h1.buffer)
        if shortcut != nil { ws.give(skip.buffer) }
        ws.give(x.buffer)
        return out
    }
}

extension FastAttention {
    /// Consumes `x`, returns `x + attention(x)` in a new map.
    func consuming(_ x: PlanarMap, zq: Tensor?, _ rt: FastRuntime, _ ws: Workspace) -> PlanarMap {
        let y = PlanarMap(ws, channels: x.channels, height: x.height, width: x.width)
        self(x, into: y, zq: zq, rt, ws)
        ws.give(x.buffer)
        return y
    }
}

/// Copies image `index` of an NCHW tensor into a new planar map.
func planarMap(from t: Tensor, image index: Int, _ ws: Workspace) -> PlanarMap {
    let (c, h, w) = (t.shape[1], t.shape[2], t.shape[3])
    let m = PlanarMap(ws, channels: c, height: h, width: w)
    t.data.withUnsafeBufferPointer { p in
        for ch in 0..<c {
            for y in 0..<h { (m.plane(ch) + (y + 1) * m.rowStride + 1).update(from: p.baseAddress! + ((index * c + ch) * h + y) * w, count: w) }
        }
    }
    return m
}

/// Copies a planar map's interior into a `[1, C, H, W]` tensor.
func tensor(from m: PlanarMap) -> Tensor {
    var t = Tensor(zeros: [1, m.channels, m.height, m.width])
    t.data.withUnsafeMutableBufferPointer { p in
        for c in 0..<m.channels {
            for y in 0..<m.height { (p.baseAddress! + (c * m.height + y) * m.width).update(from: m.plane(c) + (y + 1) * m.rowStride + 1, count: m.width) }
        }
    }
    return t
}
