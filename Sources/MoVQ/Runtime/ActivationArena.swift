/// The activation memory of one plan at one input size: every value and
/// every op's scratch gets an offset in one 64-byte aligned block, planned
/// from lifetimes before anything runs (ggml's planned work buffer).
///
/// A value lives from the op that writes it first to the last op that
/// reads it (the plan's input from the start, its output to the end); an
/// op's scratch lives during that op. Buffers are placed first-fit in the
/// order they come alive, so buffers alive at the same time never overlap
/// (`overlaps` checks it; the tests run it on every plan). Contents are
/// undefined: executors zero the borders they rely on.
struct ActivationLayout: Sendable {
    /// Float offsets of the values (nil: the value is never stored).
    let valueOffsets: [Int?]
    /// Float offsets of each op's scratch (nil: none).
    let scratchOffsets: [Int?]
    /// Total floats.
    let floats: Int
    /// Bytes of the arena.
    var bytes: Int { floats * 4 }

    /// Per buffer: (first op, last op, floats, offset) after planning, for checks.
    let intervals: [(first: Int, last: Int, floats: Int, offset: Int)]

    /// Plans `plan` with `valueFloats[v]` floats per value and
    /// `scratchFloats[i]` per op (0: none).
    init(_ plan: ModelPlan, valueFloats: [Int], scratchFloats: [Int]) {
        let ops = plan.ops.count
        var first = [Int](repeating: Int.max, count: plan.values.count), last = [Int](repeating: -1, count: plan.values.count)
        first[plan.input] = -1
        for (i, op) in plan.ops.enumerated() {
            for v in op.outputs { first[v] = min(first[v], i); last[v] = max(last[v], i) }
            for v in op.inputs { last[v] = max(last[v], i) }
        }
        for v in plan.outputs { last[v] = ops }
        for v in plan.state { first[v] = -1; last[v] = ops }  // kept from one run to the next
        self.init(values: plan.values.indices.map { first[$0] == Int.max ? nil : (first[$0], last[$0], valueFloats[$0]) },
                  scratch: scratchFloats, steps: ops)
    }

    /// Plans buffers over `steps` steps: value `v` alive over steps
    /// `values[v].first ... last` (-1: from the start; nil: never stored),
    /// step `t`'s scratch (`scratch[t]` floats, 0: none) during step `t`.
    init(values lifetimes: [(first: Int, last: Int, floats: Int)?], scratch scratchFloats: [Int], steps: Int) {
        // Buffers in the order they come alive: values first written at step t, then step t's scratch.
        var buffers: [(first: Int, last: Int, floats: Int, value: Int?, op: Int?)] = []
        for t in -1..<steps {
            for (v, life) in lifetimes.enumerated() where life?.first == t { buffers.append((t, life!.last, Self.round(life!.floats), v, nil)) }
            if t >= 0, scratchFloats[t] > 0 { buffers.append((t, t, Self.round(scratchFloats[t]), nil, t)) }
        }
        var offsets = [Int](repeating: 0, count: buffers.count)
        var live: [Int] = []  // indices into buffers, sorted by offset
        var top = 0, next = 0
        for t in -1..<steps {
            while next < buffers.count && buffers[next].first == t {
                let size = buffers[next].floats
                var candidate = 0
                for b in live {
                    if candidate + size <= offsets[b] { break }
                    candidate = max(candidate, offsets[b] + buffers[b].floats)
                }
                offsets[next] = candidate
                live.append(next)
                live.sort { offsets[$0] < offsets[$1] }
                top = max(top, candidate + size)
                next += 1
            }
            live.removeAll { buffers[$0].last <= t }
        }
        var values = [Int?](repeating: nil, count: lifetimes.count), scratch = [Int?](repeating: nil, count: steps)
        for (b, buf) in buffers.enumerated() {
            if let v = buf.value { values[v] = offsets[b] }
            if let o = buf.op { scratch[o] = offsets[b] }
        }
        valueOffsets = values; scratchOffsets = scratch; floats = max(16, top)
        intervals = buffers.indices.map { (buffers[$0].first, buffers[$0].last, buffers[$0].floats, offsets[$0]) }
    }

    /// Sizes rounded up to 64 bytes.
    static func round(_ floats: Int) -> Int { (max(1, floats) + 15) / 16 * 16 }

    /// Whether two buffers alive at the same time share memory (never, by construction).
    var overlaps: Bool {
        for a in intervals.indices {
            for b in intervals.indices where b > a {
                let x = intervals[a], y = intervals[b]
                let together = x.first <= y.last && y.first <= x.last
                let shared = x.offset < y.offset + y.floats && y.offset < x.offset + x.floats
                if together && shared { return true }
            }
        }
        return false
    }
}

/// The memory of an `ActivationLayout`.
final class ActivationArena: @unchecked Sendable {
    let layout: ActivationLayout
    let base: UnsafeMutablePointer<Float>

    init(_ layout: ActivationLayout) {
        self.layout = layout
        base = UnsafeMutableRawPointer.allocate(byteCount: layout.bytes, alignment: 64).bindMemory(to: Float.self, capacity: layout.floats)
    }

    func value(_ v: Int) -> UnsafeMutablePointer<Float> { base + layout.valueOffsets[v]! }
    func scratch(_ op: Int) -> UnsafeMutablePointer<Float>? { layout.scratchOffsets[op].map { base + $0 } }

    deinit { base.deallocate() }
}
