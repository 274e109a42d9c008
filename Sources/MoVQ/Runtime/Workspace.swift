/// The activation memory of the fast decoder: a static plan with one arena.
///
/// The first decode of a given shape runs in *recording* mode: buffers are
/// allocated and freed as the layers ask, and the sequence of requests is
/// recorded. Then a first-fit planner assigns every request an offset in one
/// 64-byte aligned arena such that buffers alive at the same time never
/// overlap. Every later decode of that shape *replays* the plan: no
/// allocation at all, and memory equal to the arena (close to the peak of
/// live buffers). Buffers are not zeroed on replay; `PlanarMap` zeroes the
/// borders it relies on.
final class Workspace: @unchecked Sendable {
    private struct Event { var take: Bool; var id: Int; var bytes: Int }

    private var key: [Int]? = nil
    private var replaying = false
    private var events: [Event] = []
    private var offsets: [Int] = []
    private var sizes: [Int] = []
    private var arena: UnsafeMutableRawPointer? = nil
    private var arenaBytes = 0
    private var takeIndex = 0
    private var ids: [UnsafeMutablePointer<Float>: Int] = [:]

    /// Starts a decode of the given shape; replays the plan if it matches.
    func begin(shape: [Int]) {
        takeIndex = 0
        replaying = key == shape && arena != nil
        if !replaying { events = []; sizes = [] }
        key = shape
    }

    /// Ends a decode; after a recording, builds the plan and the arena.
    func end() {
        guard !replaying else { return }
        precondition(ids.isEmpty, "workspace buffers still in use at the end of a decode")
        var live: [(start: Int, end: Int, id: Int)] = []
        offsets = [Int](repeating: 0, count: sizes.count)
        var top = 0
        for e in events {
            if e.take {
                var candidate = 0
                for iv in live.sorted(by: { $0.start < $1.start }) {
                    if candidate + e.bytes <= iv.start { break }
                    candidate = max(candidate, iv.end)
                }
                offsets[e.id] = candidate
                live.append((candidate, candidate + e.bytes, e.id))
                top = max(top, candidate + e.bytes)
            } else {
                live.removeAll { $0.id == e.id }
            }
        }
        arena?.deallocate()
        arenaBytes = top
        arena = UnsafeMutableRawPointer.allocate(byteCount: max(64, top), alignment: 64)
    }

    /// A buffer of `count` floats (contents undefined).
    func take(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        let bytes = (max(1, count) * 4 + 63) / 64 * 64
        if replaying {
            precondition(takeIndex < sizes.count && sizes[takeIndex] == bytes, "decode asked for buffers other than its plan")
            let p = (arena! + offsets[takeIndex]).bindMemory(to: Float.self, capacity: count)
            takeIndex += 1
            return UnsafeMutableBufferPointer(start: p, count: count)
        }
        let id = sizes.count
        sizes.append(bytes)
        events.append(Event(take: true, id: id, bytes: bytes))
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: Float.self, capacity: count)
        ids[p] = id
        return UnsafeMutableBufferPointer(start: p, count: count)
    }

    /// Returns a buffer (a no-op when replaying: the plan already knows).
    func give(_ b: UnsafeMutableBufferPointer<Float>) {
        guard !replaying else { return }
        guard let id = ids.removeValue(forKey: b.baseAddress!) else { preconditionFailure("unknown workspace buffer") }
        events.append(Event(take: false, id: id, bytes: sizes[id]))
        UnsafeMutableRawPointer(b.baseAddress!).deallocate()
    }

    /// Bytes of the planned arena (0 before the first decode).
    var bytes: Int { arenaBytes }

    deinit { arena?.deallocate() }
}

/// One image's activations in the padded planar layout: `channels` planes of
/// `(height + 2) x rowStride` floats (`rowStride = width + 2`), zero border,
/// first interior pixel at `rowStride + 1`, plus slack after each plane for
/// the vector kernels' overrun.
struct PlanarMap {
    var buffer: UnsafeMutableBufferPointer<Float>
    let channels: Int, height: Int, width: Int

    var rowStride: Int { width + 2 }
    var planeStride: Int { PlanarMap.planeStride(height: height, width: width) }
    var base: UnsafeMutablePointer<Float> { buffer.baseAddress! }

    static let slack = 128
    static func planeStride(height: Int, width: Int) -> Int { ((height + 2) * (width + 2) + slack + 15) / 16 * 16 }
    static func floats(channels: Int, height: Int, width: Int) -> Int { channels * planeStride(height: height, width: width) }

    /// Takes a buffer from the workspace and zeroes every border (the interior is undefined).
    init(_ ws: Workspace, channels: Int, height: Int, width: Int) {
        self.channels = channels; self.height = height; self.width = width
        buffer = ws.take(PlanarMap.floats(channels: channels, height: height, width: width))
        for c in 0..<channels { plane(c).update(repeating: 0, count: rowStride) }
        zeroBorders(Parallelism(threads: 1))
    }

    func plane(_ c: Int) -> UnsafeMutablePointer<Float> { base + c * planeStride }

    /// Zeroes the border columns, the bottom border row and the slack (where
    /// the convolution writes garbage) for every plane.
    func zeroBorders(_ par: Parallelism) {
        let (h, rs, ps) = (height, rowStride, planeStride)
        let b = UnsafeSendableBox(base)
        par.forEachRange(channels, minimumChunk: 16) { range in
            for c in range {
                let p = b.value + c * ps
                for y in 1...h { p[y * rs] = 0; p[y * rs + rs - 1] = 0 }
                (p + (h + 1) * rs).update(repeating: 0, count: ps - (h + 1) * rs)
            }
        }
    }
}
